import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from uuid import UUID

import pytest

from ssbg.domain.audit_chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    ChainedFields,
    NotCanonical,
    canonical_entry_text,
    canonical_json,
    compute_entry_hash,
)

FIELDS = ChainedFields(
    event_id=UUID("0b7f4a43-5c2e-4d57-9e3a-7f6f2d9c1a10"),
    sequence_number=7,
    occurred_at=datetime(2026, 11, 27, 12, 0, 0, 5, tzinfo=UTC),
    action="POLICY_CHECK_ALLOW",
    resource="backup:3f2b8f3e-9a34-4a53-8f1d-2a7e5c0b9d11",
    result="SUCCESS",
    incident_level=1,
    actor_id=None,
    actor_role="admin",
    details={"z": [1, "deux", None, True], "a": {"é": '\u2028"\\'}, "m": -3},
    source_ip="2001:db8::1",
    request_id=None,
)


def _reference(prev_hash: str, fields: ChainedFields) -> str:
    """The documented rule, spelled out with nothing but the standard library."""
    body = json.dumps(
        fields.as_canonical_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha512(prev_hash.encode("ascii") + body.encode("utf-8")).hexdigest()


def test_entry_hash_follows_the_documented_rule() -> None:
    assert compute_entry_hash(GENESIS_HASH, FIELDS) == _reference(GENESIS_HASH, FIELDS)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"actor_id": UUID(int=1), "request_id": "r-\u2028-\x00-\x1f-\x7f-\U0001f600"},
        {"details": {}, "source_ip": None, "actor_role": None},
        {"details": {"B": 1, "a": 2, "ä": [], "\U0001f600": {"z": None, "y": 10**30}}},
        {"resource": 'q"u\\o\\"te', "action": "X" * 40},
    ],
)
def test_canonical_entry_text_is_the_sorted_compact_json_of_the_fields(
    changes: dict[str, object],
) -> None:
    fields = dataclasses.replace(FIELDS, **changes)  # type: ignore[arg-type]
    canonical = fields.as_canonical_dict()

    text = canonical_entry_text(*(canonical[name] for name in HASHED_FIELDS))

    assert text.encode() == canonical_json(canonical)
    assert compute_entry_hash("a" * 128, fields) == _reference("a" * 128, fields)


@pytest.mark.parametrize(
    "change", [{"sequence_number": True}, {"incident_level": "0"}, {"action": None}]
)
def test_fields_of_the_wrong_json_type_have_no_canonical_text(change: dict[str, object]) -> None:
    canonical = {**FIELDS.as_canonical_dict(), **change}

    with pytest.raises(NotCanonical):
        canonical_entry_text(*(canonical[name] for name in HASHED_FIELDS))


def test_canonical_form_sorts_keys_and_keeps_non_ascii() -> None:
    assert canonical_json({"b": 1, "a": {"é": None}}) == '{"a":{"é":null},"b":1}'.encode()


@pytest.mark.parametrize("details", [{"x": 1.5}, {"x": [float("nan")]}, {"x": {1: "a"}}])
def test_values_without_a_canonical_form_are_refused(details: dict[object, object]) -> None:
    with pytest.raises(NotCanonical):
        compute_entry_hash(GENESIS_HASH, dataclasses.replace(FIELDS, details=details))
