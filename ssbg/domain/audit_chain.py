"""The audit chain's hashing rules (SPEC §7), pure and documented in docs/audit-evidence.md.

``entry_hash = SHA-512(prev_hash || canonical_json(fields))`` where

* ``prev_hash`` is the previous entry's hash as 128 lowercase hex ASCII characters; the first
  entry's ``prev_hash`` is ``SHA-512("SSBG-GENESIS")`` in the same form;
* ``fields`` are exactly the keys of :data:`HASHED_FIELDS`, absent values as JSON ``null``;
* canonical JSON is UTF-8, keys sorted by code point, separators ``,`` and ``:`` with no
  whitespace, non-ASCII characters written as themselves, and no floating-point numbers
  anywhere (integers, strings, booleans, null, arrays and objects only);
* timestamps are ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC, always six fraction digits;
* UUIDs are lowercase hyphenated strings.
"""

import hashlib
import json
import json.encoder
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

GENESIS_HASH = hashlib.sha512(b"SSBG-GENESIS").hexdigest()

HASHED_FIELDS = (
    "event_id",
    "sequence_number",
    "occurred_at",
    "actor_id",
    "actor_role",
    "action",
    "resource",
    "result",
    "details",
    "source_ip",
    "request_id",
    "incident_level",
)


class NotCanonical(ValueError):
    """A value cannot be represented in the canonical form (a float, a non-string key...)."""


def format_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise NotCanonical("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_canonical(value: Any, path: str = "details") -> None:
    """Raise :class:`NotCanonical` unless ``value`` is JSON made only of canonical types."""
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        raise NotCanonical(f"{path}: floating-point numbers are not allowed")
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_canonical(item, f"{path}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonical(f"{path}: object keys must be strings")
            check_canonical(item, f"{path}.{key}")
        return
    raise NotCanonical(f"{path}: {type(value).__name__} is not a JSON type")


def _refuse(value: Any) -> Any:
    raise NotCanonical(f"{type(value).__name__} is not a JSON type")


def _make_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, fast.

    The validator hashes every entry of the chain, so the per-call set-up of
    ``json.dumps`` matters: when CPython's C encoder is available it is built once here with
    exactly the options ``json.dumps`` would pass it (no circular-reference markers: the
    values are trees by construction).
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has _json
        encoder = json.JSONEncoder(
            sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return encoder.encode
    iterencode: Callable[[Any, int], Iterator[str]] = c_make_encoder(
        None, _refuse, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )

    def encode(value: Any) -> str:
        return "".join(iterencode(value, 0))

    return encode


_encode = _make_encoder()


def canonical_json(value: Mapping[str, Any]) -> bytes:
    check_canonical(value, "entry")
    return _encode(value).encode("utf-8")


_quote = json.encoder.encode_basestring  # a JSON string literal, non-ASCII as itself


def canonical_entry_text(
    event_id: str,
    sequence_number: int,
    occurred_at: str,
    actor_id: str | None,
    actor_role: str | None,
    action: str,
    resource: str,
    result: str,
    details: Mapping[str, Any],
    source_ip: str | None,
    request_id: str | None,
    incident_level: int,
) -> str:
    """The canonical JSON of an entry's hashed fields, each given in its canonical text form.

    Exactly ``canonical_json`` of the same twelve fields, written out key by key in sorted
    order: the validator builds it for every entry of the chain, and this is about twice as
    fast as building a dict and sorting it. ``details`` must already be canonical (no floats:
    see :func:`check_canonical`); anything else raises :class:`NotCanonical`.
    """
    if type(sequence_number) is not int or type(incident_level) is not int:
        raise NotCanonical("sequence_number and incident_level are integers")
    try:
        return (
            f'{{"action":{_quote(action)},'
            f'"actor_id":{"null" if actor_id is None else _quote(actor_id)},'
            f'"actor_role":{"null" if actor_role is None else _quote(actor_role)},'
            f'"details":{_encode(details)},'
            f'"event_id":{_quote(event_id)},'
            f'"incident_level":{incident_level},'
            f'"occurred_at":{_quote(occurred_at)},'
            f'"request_id":{"null" if request_id is None else _quote(request_id)},'
            f'"resource":{_quote(resource)},'
            f'"result":{_quote(result)},'
            f'"sequence_number":{sequence_number},'
            f'"source_ip":{"null" if source_ip is None else _quote(source_ip)}}}'
        )
    except TypeError:
        raise NotCanonical("a field is not of its JSON type") from None


def entry_hash_of(prev_hash: str, canonical_text: str) -> str:
    """``SHA-512(prev_hash as ASCII ‖ canonical JSON as UTF-8)``, lowercase hex."""
    try:
        return hashlib.sha512(
            prev_hash.encode("ascii") + canonical_text.encode("utf-8")
        ).hexdigest()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in stored JSON) is not UTF-8
        raise NotCanonical("text that is not valid Unicode") from None


@dataclass(frozen=True, slots=True)
class ChainedFields:
    """The fields of one audit entry that its hash covers."""

    event_id: UUID
    sequence_number: int
    occurred_at: datetime
    action: str
    resource: str
    result: str
    incident_level: int
    actor_id: UUID | None = None
    actor_role: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    source_ip: str | None = None
    request_id: str | None = None

    def as_canonical_dict(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "sequence_number": self.sequence_number,
            "occurred_at": format_timestamp(self.occurred_at),
            "actor_id": str(self.actor_id) if self.actor_id is not None else None,
            "actor_role": self.actor_role,
            "action": self.action,
            "resource": self.resource,
            "result": self.result,
            "details": dict(self.details),
            "source_ip": self.source_ip,
            "request_id": self.request_id,
            "incident_level": self.incident_level,
        }


@dataclass(frozen=True, slots=True)
class ChainedEntry:
    """One audit entry as appended: its fields and the two hashes that link it."""

    fields: ChainedFields
    prev_hash: str
    entry_hash: str


def compute_entry_hash(prev_hash: str, fields: ChainedFields) -> str:
    check_canonical(fields.details)
    return entry_hash_of(
        prev_hash,
        canonical_entry_text(
            str(fields.event_id),
            fields.sequence_number,
            format_timestamp(fields.occurred_at),
            str(fields.actor_id) if fields.actor_id is not None else None,
            fields.actor_role,
            fields.action,
            fields.resource,
            fields.result,
            fields.details,
            fields.source_ip,
            fields.request_id,
            fields.incident_level,
        ),
    )
