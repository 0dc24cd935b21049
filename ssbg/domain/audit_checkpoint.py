"""Signed checkpoints of the audit chain (SPEC §7), pure; documented in docs/audit-evidence.md.

Every ``interval`` entries (the entry whose sequence number is a multiple of the interval) the
gateway signs a statement "entry ``sequence_number`` of this chain has hash ``entry_hash``".
The hash chain alone cannot tell a genuine chain from one rewritten from scratch by someone who
can write to the database; a signature by a key that never enters the database can.

The signed bytes (:func:`checkpoint_signing_input`) are ASCII, one ``name=value`` line per
field, each line ending in LF, the first line naming the format and its version::

    SSBG-AUDIT-CHECKPOINT-V1
    sequence_number=1000
    entry_hash=<128 lowercase hex>
    created_at=2026-11-27T12:00:00.000000Z
    checkpoint_interval=1000
    previous_checkpoint_sequence=0

Beyond the sequence, hash and time, the statement names the interval in force and the sequence
of the previous checkpoint (0 for the first), so deleting checkpoint rows is itself evident: a
checkpoint whose predecessor is missing, or a chain that runs past the next checkpoint its last
one announces, is reported (see :mod:`ssbg.domain.audit_verification`).

The signature is ECDSA over P-384 with SHA-384, DER-encoded (RFC 3279 ``Ecdsa-Sig-Value``),
carried as standard base64.
"""

import re
from dataclasses import dataclass
from typing import Any

CHECKPOINT_FORMAT = "SSBG-AUDIT-CHECKPOINT-V1"
SIGNATURE_ALGORITHM = "ECDSA-P384-SHA384"

# The forms signed statements accept: an entry hash, a canonical timestamp.
HASH_FORMAT = re.compile(r"[0-9a-f]{128}")
TIMESTAMP_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint as stored and exported; ``created_at`` in the canonical timestamp form."""

    sequence_number: int
    entry_hash: str
    created_at: str
    checkpoint_interval: int
    previous_checkpoint_sequence: int
    signing_key_id: str
    signature: str  # base64 of the DER signature

    def signing_input(self) -> bytes:
        return checkpoint_signing_input(
            sequence_number=self.sequence_number,
            entry_hash=self.entry_hash,
            created_at=self.created_at,
            checkpoint_interval=self.checkpoint_interval,
            previous_checkpoint_sequence=self.previous_checkpoint_sequence,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequence_number": self.sequence_number,
            "entry_hash": self.entry_hash,
            "created_at": self.created_at,
            "checkpoint_interval": self.checkpoint_interval,
            "previous_checkpoint_sequence": self.previous_checkpoint_sequence,
            "signing_key_id": self.signing_key_id,
            "signature": self.signature,
        }


def checkpoint_signing_input(
    *,
    sequence_number: int,
    entry_hash: str,
    created_at: str,
    checkpoint_interval: int,
    previous_checkpoint_sequence: int,
) -> bytes:
    """The exact bytes a checkpoint signature covers.

    Raises ``ValueError`` for values that have no place in the format, so a malformed
    checkpoint can never be signed, nor two different checkpoints share signed bytes.
    """
    if sequence_number < 1 or checkpoint_interval < 1:
        raise ValueError("sequence numbers and intervals are positive")
    if not 0 <= previous_checkpoint_sequence < sequence_number:
        raise ValueError("the previous checkpoint precedes this one")
    if not HASH_FORMAT.fullmatch(entry_hash):
        raise ValueError("entry_hash is 128 lowercase hex characters")
    if not TIMESTAMP_FORMAT.fullmatch(created_at):
        raise ValueError("created_at is YYYY-MM-DDTHH:MM:SS.ffffffZ")
    lines = (
        CHECKPOINT_FORMAT,
        f"sequence_number={sequence_number}",
        f"entry_hash={entry_hash}",
        f"created_at={created_at}",
        f"checkpoint_interval={checkpoint_interval}",
        f"previous_checkpoint_sequence={previous_checkpoint_sequence}",
    )
    return "".join(f"{line}\n" for line in lines).encode("ascii")


def is_checkpoint_due(sequence_number: int, interval: int) -> bool:
    return sequence_number % interval == 0


def next_checkpoint_after(sequence_number: int, interval: int) -> int:
    """The first multiple of ``interval`` after ``sequence_number``."""
    return (sequence_number // interval + 1) * interval
