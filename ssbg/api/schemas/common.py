"""The success envelope (SPEC §3): ``{"data": …, "meta": {"request_id": …}}``, and the
bounds every integer and timestamp of a request is held to (SPEC §13.3)."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import annotated_types
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

T = TypeVar("T")


class Meta(BaseModel):
    request_id: str


class ListMeta(Meta):
    next_cursor: str | None = None
    total: int | None = None


class Envelope(BaseModel, Generic[T]):
    data: T
    meta: Meta


class ListEnvelope(BaseModel, Generic[T]):
    data: list[T]
    meta: ListMeta


class StrictInput(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


# Input bounds (SPEC §13.3): a value the databases cannot hold is a 422 naming the field, never
# a 500 from the driver or from a conversion to UTC. Query parameters and body fields use the
# same types, so one rule covers every route.

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

SafeInt64 = Annotated[int, annotated_types.Interval(ge=INT64_MIN, le=INT64_MAX)]
"""An integer both databases store (``BIGINT``); routes add tighter bounds where they apply."""


def _integral(value: Any) -> Any:
    """``5.0`` is the integer 5 in JSON (and in JSON Schema's ``integer``); ``5.5`` is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


INTEGRAL = BeforeValidator(_integral)
"""With ``StrictInt``: a JSON body's integer is a number without a fraction (``5`` or ``5.0``),
never a string or a boolean."""


# What ``str.strip()`` removes (``str.isspace``), as a regex class body.
_SPACE = (
    "\\t\\n\\u000b\\u000c\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)


def stripped_pattern(min_length: int, max_length: int) -> str:
    """A pattern for text of ``min_length``..``max_length`` (≥ 2) characters once stripped of
    surrounding white space: the length rule stated on the text as sent, so the OpenAPI
    description says it exactly (``minLength`` would count the white space too). Use with
    ``AfterValidator(str.strip)`` to store it stripped."""
    edge = f"[^{_SPACE}]"
    middle = f"[\\s\\S]{{{min_length - 2},{max_length - 2}}}"
    return f"^[{_SPACE}]*{edge}{middle}{edge}[{_SPACE}]*$"


def storable_datetime(value: datetime) -> datetime:
    """``value`` if it is a moment both databases store: after conversion to UTC, within years
    1..9999 (PostgreSQL ``timestamptz`` holds more; Python's ``datetime`` and our SQLite text
    format do not). Raises ``ValueError`` otherwise."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must lie within years 0001..9999 once converted to UTC") from None
    return value


# RFC 3339 ``date-time`` (what the OpenAPI description's ``format: date-time`` promises): Pydantic
# alone would also take a number of seconds since 1970 (``to=0.5``), a date without time, a
# space for the ``T`` or an offset without its colon.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def rfc3339_text(value: Any) -> Any:
    """``value`` if it is an RFC 3339 date-time string (or already a ``datetime``)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time, for example 2026-01-31T08:00:00Z")
    return value


StoredDatetime = Annotated[
    AwareDatetime, BeforeValidator(rfc3339_text), AfterValidator(storable_datetime)
]
"""An RFC 3339 timestamp with its offset that converts to UTC within years 1..9999."""
