import hashlib
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from ssbg.domain.audit_chain import (
    GENESIS_HASH,
    ChainedFields,
    NotCanonical,
    canonical_json,
    compute_entry_hash,
    format_timestamp,
)

VECTOR = ChainedFields(
    event_id=UUID("00000000-0000-4000-8000-000000000001"),
    sequence_number=1,
    occurred_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    action="API_KEY_CREATE",
    resource="api_key:00000000-0000-4000-8000-0000000000aa",
    result="SUCCESS",
    incident_level=0,
    actor_id=None,
    actor_role=None,
    details={"role": "auditor", "zeta": [1, True, None], "alpha": {"b": "é", "a": 2}},
    source_ip="192.0.2.1",
    request_id="req-1",
)

# The canonical form, written out by hand: sorted keys, no spaces, UTF-8, no floats.
VECTOR_CANONICAL = (
    '{"action":"API_KEY_CREATE","actor_id":null,"actor_role":null,'
    '"details":{"alpha":{"a":2,"b":"é"},"role":"auditor","zeta":[1,true,null]},'
    '"event_id":"00000000-0000-4000-8000-000000000001","incident_level":0,'
    '"occurred_at":"2026-01-02T03:04:05.678901Z","request_id":"req-1",'
    '"resource":"api_key:00000000-0000-4000-8000-0000000000aa","result":"SUCCESS",'
    '"sequence_number":1,"source_ip":"192.0.2.1"}'
)
# SHA-512(GENESIS_HASH hex || VECTOR_CANONICAL), fixed here so that any change to the
# canonical form breaks this test (and is therefore a deliberate, versioned decision).
VECTOR_HASH = (
    "6545ed50f10c71c1c4392693eefb069fcc2905283179ee70c883e6bbfbdce3fc"
    "97291dda4a4e28b330d8d35cb3d6cc5215f58f5ad7caa9281a612cdef5b8ef9e"
)


def test_genesis_hash_is_sha512_of_the_genesis_string() -> None:
    assert hashlib.sha512(b"SSBG-GENESIS").hexdigest() == GENESIS_HASH


def test_canonical_json_matches_the_documented_form() -> None:
    assert canonical_json(VECTOR.as_canonical_dict()) == VECTOR_CANONICAL.encode("utf-8")


def test_entry_hash_is_sha512_of_previous_hash_and_canonical_json() -> None:
    expected = hashlib.sha512(
        GENESIS_HASH.encode("ascii") + VECTOR_CANONICAL.encode("utf-8")
    ).hexdigest()
    assert compute_entry_hash(GENESIS_HASH, VECTOR) == expected


def test_entry_hash_test_vector_is_stable() -> None:
    assert compute_entry_hash(GENESIS_HASH, VECTOR) == VECTOR_HASH


def test_any_field_change_changes_the_hash() -> None:
    base = compute_entry_hash(GENESIS_HASH, VECTOR)
    variants = [
        ChainedFields(**{**_fields(VECTOR), "sequence_number": 2}),
        ChainedFields(**{**_fields(VECTOR), "result": "DENIED"}),
        ChainedFields(**{**_fields(VECTOR), "details": {"role": "admin"}}),
        ChainedFields(
            **{**_fields(VECTOR), "occurred_at": VECTOR.occurred_at + timedelta(microseconds=1)}
        ),
    ]
    assert all(compute_entry_hash(GENESIS_HASH, variant) != base for variant in variants)
    assert compute_entry_hash("0" * 128, VECTOR) != base


@pytest.mark.parametrize(
    "details",
    [{"ratio": 0.5}, {"nested": [{"x": 1.0}]}, {1: "non-string key"}, {"when": datetime.now(UTC)}],
)
def test_non_canonical_details_are_refused(details: dict[object, object]) -> None:
    fields = ChainedFields(**{**_fields(VECTOR), "details": details})
    with pytest.raises(NotCanonical):
        compute_entry_hash(GENESIS_HASH, fields)


def test_timestamps_are_normalised_to_utc_with_six_fraction_digits() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2026, 1, 1, 2, 0, tzinfo=plus_two)) == (
        "2026-01-01T00:00:00.000000Z"
    )
    with pytest.raises(NotCanonical):
        format_timestamp(datetime(2026, 1, 1))


def _fields(fields: ChainedFields) -> dict[str, object]:
    return {name: getattr(fields, name) for name in ChainedFields.__slots__}
