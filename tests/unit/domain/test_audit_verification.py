"""The validation rules on chains built in memory (signatures: a stand-in predicate)."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from ssbg.domain.audit_chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    ChainedFields,
    canonical_entry_text,
    compute_entry_hash,
    entry_hash_of,
)
from ssbg.domain.audit_checkpoint import Checkpoint
from ssbg.domain.audit_verification import (
    ChainVerifier,
    EntryTuple,
    HeadRef,
    ValidationReason,
    ValidationResult,
    combine_segments,
    entries_from_columns,
    split_range,
)

MOMENT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def chain(length: int, *, declared: dict[int, int] | None = None) -> list[EntryTuple]:
    """``declared``: sequence → the checkpoint interval a ``SYSTEM_START`` there declares."""
    entries: list[EntryTuple] = []
    prev = GENESIS_HASH
    for sequence in range(1, length + 1):
        interval = (declared or {}).get(sequence)
        fields = ChainedFields(
            event_id=UUID(int=sequence),
            sequence_number=sequence,
            occurred_at=MOMENT,
            action="AUDIT_READ" if interval is None else "SYSTEM_START",
            resource="audit" if interval is None else "system",
            result="SUCCESS",
            incident_level=0,
            details={"n": sequence} if interval is None else {"checkpoint_interval": interval},
        )
        entry_hash = compute_entry_hash(prev, fields)
        entries.append((sequence, text_of(fields.as_canonical_dict()), prev, entry_hash))
        prev = entry_hash
    return entries


def text_of(canonical: dict[str, Any]) -> str:
    return canonical_entry_text(*(canonical[name] for name in HASHED_FIELDS))


def checkpoint(
    entries: list[EntryTuple], sequence: int, previous: int, interval: int, signature: str = "ok"
) -> Checkpoint:
    return Checkpoint(
        sequence_number=sequence,
        entry_hash=entries[sequence - 1][3],
        created_at="2026-11-27T12:00:00.000000Z",
        checkpoint_interval=interval,
        previous_checkpoint_sequence=previous,
        signing_key_id="key",
        signature=signature,
    )


def every(entries: list[EntryTuple], interval: int) -> list[Checkpoint]:
    sequences = range(interval, len(entries) + 1, interval)
    return [checkpoint(entries, s, s - interval, interval) for s in sequences]


def verify(
    entries: list[EntryTuple],
    checkpoints: list[Checkpoint],
    *,
    first: int = 1,
    anchor: str | None = GENESIS_HASH,
    interval: int | None = None,
    head: tuple[int, str] | None = None,
    batch: int = 7,
) -> ValidationResult:
    verifier = ChainVerifier(
        first_sequence=first,
        anchor_hash=anchor,
        signature_valid=lambda c: c.signature == "ok",
        checkpoint_interval=interval,
    )
    verifier.add_checkpoints(checkpoints)
    for start in range(0, len(entries), batch):
        if not verifier.add_entries(entries[start : start + batch]):
            break
    head_sequence, head_hash = head if head else (entries[-1][0], entries[-1][3])
    return verifier.finish(
        head=HeadRef(head_sequence, head_hash),
        expected_last_sequence=head_sequence,
        expected_last_hash=head_hash,
    )


def outcome(result: ValidationResult) -> tuple[int | None, str | None]:
    return result.first_invalid_sequence, result.reason.value if result.reason else None


def test_intact_chain_with_checkpoints_is_valid() -> None:
    entries = chain(30)

    result = verify(entries, every(entries, 10), interval=10)

    assert result.valid
    assert (result.entries_checked, result.checkpoints_verified) == (30, 3)
    assert result.as_dict()["head"] == {"sequence": 30, "hash": entries[-1][3]}


def test_entries_checked_counts_the_entries_that_passed_before_the_problem() -> None:
    entries = chain(20)
    text = entries[11][1]
    assert text is not None
    entries[11] = (12, text.replace("SUCCESS", "DENIED"), entries[11][2], entries[11][3])

    result = verify(entries, [])

    assert outcome(result) == (12, "HASH_MISMATCH")
    assert result.entries_checked == 11


def test_non_canonical_content_is_a_hash_mismatch() -> None:
    entries = chain(5)
    entries[2] = (3, None, entries[2][2], entries[2][3])

    assert outcome(verify(entries, [])) == (3, "HASH_MISMATCH")


def test_text_that_is_not_unicode_is_a_hash_mismatch() -> None:
    entries = chain(5)
    text = entries[2][1]
    assert text is not None
    entries[2] = (3, text.replace('"n":3', '"n":"\ud800"'), entries[2][2], entries[2][3])

    assert outcome(verify(entries, [])) == (3, "HASH_MISMATCH")


def test_missing_entry_is_a_gap_at_its_sequence() -> None:
    entries = chain(10)
    del entries[4]

    assert outcome(verify(entries, [])) == (5, "SEQUENCE_GAP")


def test_reordered_entries_are_a_gap_at_the_expected_sequence() -> None:
    entries = chain(10)
    entries[3], entries[4] = entries[4], entries[3]

    assert outcome(verify(entries, [])) == (4, "SEQUENCE_GAP")


def test_wrong_prev_hash_is_a_broken_link() -> None:
    entries = chain(10)
    entries[6] = (7, entries[6][1], "0" * 128, entries[6][3])

    assert outcome(verify(entries, [])) == (7, "LINK_BROKEN")


def test_range_is_anchored_on_the_hash_before_it() -> None:
    entries = chain(10)

    good = verify(entries[4:], [], first=5, anchor=entries[3][3])
    unanchored = verify(entries[4:], [], first=5, anchor=None)

    assert good.valid
    assert good.entries_checked == 6
    assert outcome(unanchored) == (5, "LINK_BROKEN")


def test_checkpoint_with_a_bad_signature_is_reported_at_its_sequence() -> None:
    entries = chain(20)
    checkpoints = every(entries, 5)
    checkpoints[1] = checkpoint(entries, 10, 5, 5, signature="forged")

    assert outcome(verify(entries, checkpoints, interval=5)) == (
        10,
        "CHECKPOINT_SIGNATURE_INVALID",
    )


def test_rewritten_chain_fails_on_the_checkpoint_after_the_rewrite() -> None:
    entries = chain(20)
    checkpoints = every(entries, 5)
    prev = entries[6][3]  # from 8 on: other event ids, every hash recomputed
    for index in range(7, 20):
        sequence, text, _, _ = entries[index]
        assert text is not None
        text = text.replace(str(UUID(int=sequence)), str(UUID(int=1000 + sequence)))
        entry_hash = entry_hash_of(prev, text)
        entries[index] = (sequence, text, prev, entry_hash)
        prev = entry_hash

    assert outcome(verify(entries, checkpoints, interval=5)) == (10, "CHECKPOINT_MISMATCH")


def test_deleted_checkpoint_is_named_by_the_next_one() -> None:
    entries = chain(20)
    checkpoints = every(entries, 5)
    del checkpoints[1]

    assert outcome(verify(entries, checkpoints, interval=5)) == (10, "CHECKPOINT_MISMATCH")


def test_deleted_last_checkpoints_are_evident_from_the_interval() -> None:
    entries = chain(23, declared={1: 5})

    assert outcome(verify(entries, every(entries, 5)[:2], interval=5)) == (
        15,
        "CHECKPOINT_MISMATCH",
    )
    assert outcome(verify(entries, [], interval=5)) == (5, "CHECKPOINT_MISMATCH")
    assert outcome(verify(entries, [], interval=None)) == (5, "CHECKPOINT_MISMATCH")  # offline


def test_without_a_checkpoint_or_a_declaration_the_configured_interval_judges_nothing() -> None:
    # A chain written before gateways declared their interval, with no checkpoint yet (shorter
    # than the interval it was written with): today's setting says nothing about it.
    assert verify(chain(23), [], interval=5).valid


def test_a_declared_interval_after_a_checkpoint_speaks_for_what_follows() -> None:
    # Interval 5 until the checkpoint at 10, then a gateway declaring 20 at 12: the next
    # checkpoint is due at 20, whatever the validator is configured with.
    entries = chain(19, declared={12: 20})
    checkpoints = [checkpoint(entries, 5, 0, 5), checkpoint(entries, 10, 5, 5)]

    assert verify(entries, checkpoints, interval=5).valid
    assert outcome(
        verify(chain(19), [*checkpoints[:1], checkpoint(chain(19), 10, 5, 5)], interval=5)
    ) == (
        15,
        "CHECKPOINT_MISMATCH",
    )


def test_changing_the_interval_raises_no_false_alarm() -> None:
    entries = chain(40)
    # 10 then 20 at interval 10; the interval became 25: the next one is due at 25... but only
    # after the chain passed the point both schedules agree on.
    increased = [checkpoint(entries, 10, 0, 10), checkpoint(entries, 20, 10, 10)]
    # Interval 10 until 20, then 3: written at 21, 24, ...; a validator configured with 3.
    decreased = [checkpoint(entries, 10, 0, 10), checkpoint(entries, 20, 10, 10)]

    assert verify(entries[:24], increased, interval=25).valid
    assert verify(entries[:21], decreased, interval=3).valid
    assert outcome(verify(entries, increased, interval=25)) == (30, "CHECKPOINT_MISMATCH")


def test_checkpoint_after_the_last_entry_shows_a_cut_tail() -> None:
    entries = chain(20)
    checkpoints = every(entries, 5)

    result = verify(entries[:12], checkpoints, interval=5)

    assert outcome(result) == (13, "CHECKPOINT_BEYOND_HEAD")
    assert result.checkpoints_verified == 2


def test_the_head_anchor_catches_a_cut_tail_and_entries_past_it() -> None:
    entries = chain(12)

    assert outcome(verify(entries[:9], [], head=(12, entries[11][3]))) == (10, "SEQUENCE_GAP")
    assert outcome(verify(entries, [], head=(10, entries[9][3]))) == (11, "SEQUENCE_GAP")
    assert outcome(verify(entries, [], head=(12, "f" * 128))) == (12, "HASH_MISMATCH")


def test_checkpoints_must_be_added_in_ascending_order() -> None:
    entries = chain(10)
    verifier = ChainVerifier(
        first_sequence=1,
        anchor_hash=GENESIS_HASH,
        signature_valid=lambda c: True,
        checkpoint_interval=None,
    )
    verifier.add_checkpoints([checkpoint(entries, 5, 0, 5)])

    with pytest.raises(ValueError, match="ascending"):
        verifier.add_checkpoints([checkpoint(entries, 5, 0, 5)])


def test_stored_columns_with_a_float_or_a_non_object_have_no_canonical_form() -> None:
    row = (1, "id", "t", None, None, "A", "r", "SUCCESS", "{}", None, None, 0, "p", "h")

    parsed = [
        entry[1]
        for entry in entries_from_columns(
            [row, (*row[:8], '{"x": 1.0}', *row[9:]), (*row[:8], "[]", *row[9:])]
        )
    ]

    assert parsed[0] is not None
    assert '"details":{}' in parsed[0]
    assert parsed[1:] == [None, None]


# -- validating in segments --------------------------------------------------------------------

SEGMENTED_LENGTH = 30
SEGMENTED_INTERVAL = 5


def verify_in_segments(
    stored: list[EntryTuple],
    checkpoints: list[Checkpoint],
    bounds: list[tuple[int, int]],
    head: tuple[int, str],
) -> ValidationResult:
    """What the service does with a database holding ``stored`` (in sequence order, as queries
    return it): one verifier per segment, seeded from the stored rows before it."""
    by_sequence = {entry[0]: entry for entry in stored}
    outcomes = []
    for index, (first, last) in enumerate(bounds):
        final = index == len(bounds) - 1
        before = [c for c in checkpoints if c.sequence_number < first]
        anchor_row = by_sequence.get(first - 1)
        verifier = ChainVerifier(
            first_sequence=first,
            anchor_hash=GENESIS_HASH if first == 1 else anchor_row and anchor_row[3],
            signature_valid=lambda c: c.signature == "ok",
            checkpoint_interval=SEGMENTED_INTERVAL,
            range_start=1,
            previous_checkpoint=before[-1] if before else None,
        )
        verifier.add_checkpoints(
            c
            for c in checkpoints
            if c.sequence_number >= first and (final or c.sequence_number <= last)
        )
        verifier.add_entries(e for e in stored if e[0] >= first and (final or e[0] <= last))
        result = verifier.finish(
            head=HeadRef(*head),
            expected_last_sequence=head[0] if final else last,
            expected_last_hash=head[1] if final else None,
            final=final,
        )
        outcomes.append(result)
    return combine_segments(outcomes)


def _rewritten_after(entries: list[EntryTuple], kept: int) -> list[EntryTuple]:
    entries = list(entries)
    prev = entries[kept - 1][3]
    for index in range(kept, len(entries)):
        sequence, text, _, _ = entries[index]
        assert text is not None
        text = text.replace(str(UUID(int=sequence)), str(UUID(int=1000 + sequence)))
        entries[index] = (sequence, text, prev, entry_hash_of(prev, text))
        prev = entries[index][3]
    return entries


def _tampered(name: str) -> tuple[list[EntryTuple], list[Checkpoint], tuple[int, str]]:
    """(stored entries in sequence order, stored checkpoints, the head row)."""
    entries = chain(SEGMENTED_LENGTH)
    checkpoints = every(entries, SEGMENTED_INTERVAL)
    head = (SEGMENTED_LENGTH, entries[-1][3])
    kind, _, where = name.partition("@")
    at = int(where) if where else 0
    if kind == "content":
        text = entries[at - 1][1]
        assert text is not None
        entries[at - 1] = (at, text.replace("SUCCESS", "DENIED"), *entries[at - 1][2:])
    elif kind == "link":
        entries[at - 1] = (at, entries[at - 1][1], "0" * 128, entries[at - 1][3])
    elif kind == "deleted":
        del entries[at - 1]
    elif kind == "rewritten":
        entries = _rewritten_after(entries, at)
        head = (SEGMENTED_LENGTH, entries[-1][3])
    elif kind == "checkpoint-deleted":
        checkpoints = [c for c in checkpoints if c.sequence_number != at]
    elif kind == "checkpoint-forged":
        checkpoints = [
            checkpoint(entries, at, at - SEGMENTED_INTERVAL, SEGMENTED_INTERVAL, "forged")
            if c.sequence_number == at
            else c
            for c in checkpoints
        ]
    elif kind == "cut-with-head":  # entries after ``at`` deleted and the head moved back
        entries = entries[:at]
        head = (at, entries[-1][3])
    elif kind == "cut":  # entries after ``at`` deleted, the head row left alone
        entries = entries[:at]
    elif kind == "cut-and-checkpoints":  # ... together with their checkpoints
        entries = entries[:at]
        checkpoints = [c for c in checkpoints if c.sequence_number <= at]
        head = (at, entries[-1][3])
    return entries, checkpoints, head


SEGMENTED_CASES = [
    "intact",
    *(f"content@{n}" for n in (1, 4, 5, 6, 15, 16, 30)),
    *(f"link@{n}" for n in (2, 10, 11, 21)),
    *(f"deleted@{n}" for n in (1, 9, 10, 11, 30)),
    *(f"rewritten@{n}" for n in (7, 14, 15, 27)),
    *(f"checkpoint-deleted@{n}" for n in (5, 15, 25, 30)),
    *(f"checkpoint-forged@{n}" for n in (10, 20, 30)),
    *(f"cut-with-head@{n}" for n in (12, 15, 16)),
    *(f"cut@{n}" for n in (12, 15)),
    *(f"cut-and-checkpoints@{n}" for n in (12, 15, 16, 24)),
]


@pytest.mark.parametrize("case", SEGMENTED_CASES)
def test_segments_pass_exactly_when_one_pass_does(case: str) -> None:
    """Every split of the chain into two or three segments, on every kind of tampering: valid
    in segments exactly when valid in one pass — then with the same counts and head."""
    entries, checkpoints, head = _tampered(case)
    one_pass = verify(entries, checkpoints, interval=SEGMENTED_INTERVAL, head=head)
    end = head[0]  # the service splits the range up to the head it read
    splits = [[(1, cut - 1), (cut, end)] for cut in range(2, end + 1)]
    splits += [[(1, 4), (5, 5), (6, end)], [(1, end // 3), (end // 3 + 1, 2 * end // 3)]]
    splits[-1].append((2 * end // 3 + 1, end))

    for bounds in splits:
        segmented = verify_in_segments(entries, checkpoints, bounds, head)
        assert segmented.valid == one_pass.valid, bounds
        if one_pass.valid:
            assert segmented == one_pass, bounds
    # A tail cut together with its checkpoints and the head row, before the next checkpoint
    # was due, is the one change a chain with checkpoints cannot show (docs/audit-evidence.md
    # §4, "What validation cannot show").
    assert one_pass.valid == (case == "intact" or case.startswith("cut-and-checkpoints"))


def test_split_range_makes_contiguous_segments_no_shorter_than_asked() -> None:
    assert split_range(1, 1_000_000, 4, 100_000) == [
        (1, 250_000),
        (250_001, 500_000),
        (500_001, 750_000),
        (750_001, 1_000_000),
    ]
    assert split_range(1, 250_000, 4, 100_000) == [(1, 125_000), (125_001, 250_000)]
    assert split_range(5, 150_000, 4, 100_000) == [(5, 150_000)]
    assert split_range(1, 10, 3, 1) == [(1, 3), (4, 6), (7, 10)]


def test_combining_segments_counts_up_to_the_first_failure() -> None:
    head = HeadRef(30, "h")
    passed = ValidationResult(True, 10, None, None, head, 2)
    failed = ValidationResult(False, 4, 15, ValidationReason.HASH_MISMATCH, head, 0)

    result = combine_segments([passed, failed, passed])

    assert outcome(result) == (15, "HASH_MISMATCH")
    assert (result.valid, result.entries_checked, result.checkpoints_verified) == (False, 14, 2)
    assert combine_segments([passed, passed]) == ValidationResult(True, 20, None, None, head, 4)
