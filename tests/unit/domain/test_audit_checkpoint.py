import pytest

from ssbg.domain.audit_checkpoint import (
    checkpoint_signing_input,
    is_checkpoint_due,
    next_checkpoint_after,
)

HASH = "0123456789abcdef" * 8


def test_signing_input_is_the_documented_byte_string() -> None:
    assert checkpoint_signing_input(
        sequence_number=2000,
        entry_hash=HASH,
        created_at="2026-11-27T12:00:00.000001Z",
        checkpoint_interval=1000,
        previous_checkpoint_sequence=1000,
    ) == (
        b"SSBG-AUDIT-CHECKPOINT-V1\n"
        b"sequence_number=2000\n"
        b"entry_hash=" + HASH.encode() + b"\n"
        b"created_at=2026-11-27T12:00:00.000001Z\n"
        b"checkpoint_interval=1000\n"
        b"previous_checkpoint_sequence=1000\n"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"sequence_number": 0},
        {"checkpoint_interval": 0},
        {"previous_checkpoint_sequence": 2000},
        {"previous_checkpoint_sequence": -1},
        {"entry_hash": HASH.upper()},
        {"entry_hash": HASH[:-1]},
        {"created_at": "2026-11-27T12:00:00Z"},
        {"created_at": "2026-11-27T12:00:00.000001Z\nsequence_number=1"},
    ],
)
def test_values_outside_the_format_are_never_signed(change: dict[str, object]) -> None:
    values: dict[str, object] = {
        "sequence_number": 2000,
        "entry_hash": HASH,
        "created_at": "2026-11-27T12:00:00.000001Z",
        "checkpoint_interval": 1000,
        "previous_checkpoint_sequence": 1000,
        **change,
    }
    with pytest.raises(ValueError, match=r"positive|precedes|hex|created_at"):
        checkpoint_signing_input(**values)  # type: ignore[arg-type]


def test_checkpoints_fall_on_multiples_of_the_interval() -> None:
    assert [n for n in range(1, 31) if is_checkpoint_due(n, 10)] == [10, 20, 30]
    assert next_checkpoint_after(0, 10) == 10
    assert next_checkpoint_after(10, 10) == 20
    assert next_checkpoint_after(17, 10) == 20
