"""The audit anchor's pure parts: its signed bytes and file format, when it is due, that it
never moves backwards, and rule 11 of validation (does the chain reach it?)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ssbg.domain.audit_anchor import (
    INVALID_ANCHOR,
    NO_ANCHOR,
    AnchorMalformed,
    AnchorReading,
    AuditAnchor,
    anchor_problem,
    anchor_signing_input,
    decode_anchor,
    is_advance_due,
    replaces,
)
from ssbg.domain.audit_verification import ValidationReason

HASH = "ab" * 64
OTHER = "cd" * 64
ANCHOR = AuditAnchor(
    sequence_number=40,
    entry_hash=HASH,
    anchored_at="2026-11-27T12:00:00.000000Z",
    signing_key_id="0" * 64,
    signature="c2lnbmF0dXJl",
)


def test_signed_bytes_are_the_documented_lines() -> None:
    assert ANCHOR.signing_input() == (
        "SSBG-AUDIT-ANCHOR-V1\n"
        "sequence_number=40\n"
        f"entry_hash={HASH}\n"
        "anchored_at=2026-11-27T12:00:00.000000Z\n"
    ).encode("ascii")


@pytest.mark.parametrize(
    "values",
    [
        {"sequence_number": 0},
        {"entry_hash": HASH.upper()},
        {"entry_hash": HASH + "\nsequence_number=99"},
        {"anchored_at": "2026-11-27T12:00:00Z"},
    ],
)
def test_values_with_no_place_in_the_statement_are_refused(values: dict[str, Any]) -> None:
    fields = {"sequence_number": 40, "entry_hash": HASH, "anchored_at": ANCHOR.anchored_at}

    with pytest.raises(ValueError, match=r"sequence number|entry_hash|anchored_at"):
        anchor_signing_input(**(fields | values))


def test_the_file_round_trips() -> None:
    encoded = ANCHOR.encode()

    assert encoded.endswith(b"\n")
    assert json.loads(encoded)["format"] == "SSBG-AUDIT-ANCHOR"
    assert decode_anchor(encoded) == ANCHOR


def _record(**changes: Any) -> bytes:
    record = json.loads(ANCHOR.encode()) | changes
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff", id="not-ascii"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(_record(version=2), id="version"),
        pytest.param(_record(format="SSBG-AUDIT-CHECKPOINT"), id="format"),
        pytest.param(_record(extra=1), id="extra-field"),
        pytest.param(_record(signature=...), id="missing-field"),
        pytest.param(_record(sequence_number=True), id="bool-sequence"),
        pytest.param(_record(sequence_number="40"), id="string-sequence"),
        pytest.param(_record(sequence_number=-1), id="negative-sequence"),
        pytest.param(_record(entry_hash="ab"), id="short-hash"),
        pytest.param(_record(anchored_at="yesterday"), id="time"),
        pytest.param(_record(signing_key_id="k"), id="key-id"),
        pytest.param(_record(signature=None), id="null-signature"),
    ],
)
def test_anything_else_is_malformed(data: bytes) -> None:
    with pytest.raises(AnchorMalformed):
        decode_anchor(data)


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("last", "now", "due"),
    [
        (None, NOW, True),  # a process's first append
        (NOW, NOW + timedelta(seconds=59, microseconds=999_999), False),
        (NOW, NOW + timedelta(seconds=60), True),
        (NOW, NOW - timedelta(seconds=1), True),  # the clock went back: not a long wait
    ],
)
def test_an_advance_is_due_once_the_interval_has_passed(
    last: datetime | None, now: datetime, due: bool
) -> None:
    assert is_advance_due(last, now, 60) is due


@pytest.mark.parametrize(("sequence", "moves"), [(41, True), (40, False), (39, False), (1, False)])
def test_the_anchor_only_moves_forward(sequence: int, moves: bool) -> None:
    assert replaces(None, sequence) is True
    assert replaces(ANCHOR, sequence) is moves


def problem(
    reading: AnchorReading,
    *,
    first: int = 1,
    last: int = 45,
    head: int = 45,
    reaches_head: bool = True,
    hash_at_anchor: str | None = HASH,
) -> tuple[int, ValidationReason] | None:
    return anchor_problem(
        reading,
        first=first,
        last=last,
        head=head,
        reaches_head=reaches_head,
        hash_at_anchor=hash_at_anchor,
    )


VALID = AnchorReading(ANCHOR)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, None),
        ({"head": 40, "last": 40}, None),  # the head is the anchored entry
        ({"hash_at_anchor": OTHER}, (40, ValidationReason.ANCHOR_MISMATCH)),
        ({"hash_at_anchor": None}, (40, ValidationReason.ANCHOR_MISMATCH)),
        ({"head": 39, "last": 39, "hash_at_anchor": None}, (40, ValidationReason.BEHIND_ANCHOR)),
        ({"head": 0, "last": 0, "hash_at_anchor": None}, (1, ValidationReason.BEHIND_ANCHOR)),
        # A range that ends before the head is checked only if it holds the anchored entry.
        ({"last": 30, "reaches_head": False, "hash_at_anchor": None}, None),
        ({"last": 42, "reaches_head": False, "hash_at_anchor": OTHER}, (40, "ANCHOR_MISMATCH")),
        # A range to the head that starts after the anchor: nothing of it to compare.
        ({"first": 41, "hash_at_anchor": None}, None),
    ],
)
def test_the_chain_must_reach_the_anchor_with_its_hash(
    kwargs: dict[str, Any], expected: tuple[int, str] | None
) -> None:
    assert problem(VALID, **kwargs) == expected


@pytest.mark.parametrize(
    ("reading", "head", "reaches_head", "expected"),
    [
        (NO_ANCHOR, 0, True, None),  # a fresh install before its first append
        (NO_ANCHOR, 12, True, (1, ValidationReason.ANCHOR_MISSING)),
        (NO_ANCHOR, 12, False, None),
        (INVALID_ANCHOR, 12, True, (1, ValidationReason.ANCHOR_INVALID)),
        (INVALID_ANCHOR, 0, True, (1, ValidationReason.ANCHOR_INVALID)),
        (INVALID_ANCHOR, 12, False, None),
    ],
)
def test_a_missing_or_invalid_anchor_is_reported_for_a_range_to_the_head(
    reading: AnchorReading,
    head: int,
    reaches_head: bool,
    expected: tuple[int, ValidationReason] | None,
) -> None:
    assert (
        problem(reading, head=head, last=head, reaches_head=reaches_head, hash_at_anchor=None)
        == expected
    )
    assert NO_ANCHOR.missing
    assert not INVALID_ANCHOR.missing
