"""The success envelope (SPEC §3): ``{"data": …, "meta": {"request_id": …}}``, and the
bounds every integer and timestamp of a request is held to (SPEC §13.3)."""

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

import annotated_types
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict

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


def storable_datetime(value: datetime) -> datetime:
    """``value`` if it is a moment both databases store: after conversion to UTC, within years
    1..9999 (PostgreSQL ``timestamptz`` holds more; Python's ``datetime`` and our SQLite text
    format do not). Raises ``ValueError`` otherwise."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must lie within years 0001..9999 once converted to UTC") from None
    return value


StoredDatetime = Annotated[AwareDatetime, AfterValidator(storable_datetime)]
"""A timezone-aware timestamp that converts to UTC within years 1..9999."""
