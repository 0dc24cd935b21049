import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from uuid import UUID

import pytest

from ssbg.domain.audit_chain import (
    GENESIS_HASH,
    ChainedFields,
    NotCanonical,
    canonical_json,
    compute_entry_hash,
    hash_canonical_entry,
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


def test_fast_path_equals_the_checked_path() -> None:
    canonical = FIELDS.as_canonical_dict()

    assert hash_canonical_entry("a" * 128, canonical) == compute_entry_hash("a" * 128, FIELDS)


def test_canonical_form_sorts_keys_and_keeps_non_ascii() -> None:
    assert canonical_json({"b": 1, "a": {"é": None}}) == '{"a":{"é":null},"b":1}'.encode()


@pytest.mark.parametrize("details", [{"x": 1.5}, {"x": [float("nan")]}, {"x": {1: "a"}}])
def test_values_without_a_canonical_form_are_refused(details: dict[object, object]) -> None:
    with pytest.raises(NotCanonical):
        compute_entry_hash(GENESIS_HASH, dataclasses.replace(FIELDS, details=details))
