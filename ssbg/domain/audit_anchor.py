"""The audit anchor (SPEC §13.7), pure: a signed high-water mark of the chain, kept outside the
database; documented in docs/audit-evidence.md.

Signed checkpoints vouch for the chain every ``SSBG_AUDIT_CHECKPOINT_INTERVAL`` entries; before
the first one (a young chain) and after the last, nothing signed said which entries existed, so
someone who can write the database could replace them with entries whose hashes are all right.
The anchor closes that gap: the gateway signs "entry ``sequence_number`` has hash
``entry_hash``" with the audit signing key and keeps the statement in a file in the key store —
which that person cannot write — at every checkpoint and at least every
``SSBG_AUDIT_ANCHOR_SECONDS`` while entries are appended. It never moves backwards. Validation
then requires the chain to reach the anchor with the same hash (rule 11,
:func:`anchor_problem`).

The signed bytes (:func:`anchor_signing_input`) are ASCII lines, each ending in LF, the first
naming the statement's kind — so no anchor signature can pass for a checkpoint's or a bundle
head's, nor the other way round::

    SSBG-AUDIT-ANCHOR-V1
    sequence_number=1234
    entry_hash=<128 lowercase hex>
    anchored_at=2026-11-27T12:00:00.000000Z

``anchored_at`` is when the gateway wrote the anchor. The file is one JSON object (UTF-8, LF):
``{"format": "SSBG-AUDIT-ANCHOR", "version": 1, "sequence_number", "entry_hash",
"anchored_at", "signing_key_id", "signature"}`` — the signature ECDSA P-384 / SHA-384, DER,
standard base64, as for checkpoints.
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ssbg.domain.audit_checkpoint import HASH_FORMAT, TIMESTAMP_FORMAT
from ssbg.domain.audit_verification import AnchorRef, ValidationReason

ANCHOR_STATEMENT = "SSBG-AUDIT-ANCHOR-V1"
ANCHOR_FILE_FORMAT = "SSBG-AUDIT-ANCHOR"
ANCHOR_FILE_VERSION = 1

_KEY_ID = re.compile(r"[0-9a-f]{64}")
_FILE_KEYS = frozenset(
    {
        "format",
        "version",
        "sequence_number",
        "entry_hash",
        "anchored_at",
        "signing_key_id",
        "signature",
    }
)


class AnchorMalformed(ValueError):
    """The anchor file is not an anchor in the documented format."""


def anchor_signing_input(*, sequence_number: int, entry_hash: str, anchored_at: str) -> bytes:
    """The exact bytes an anchor signature covers; ``ValueError`` for values that have no
    place in the format."""
    if sequence_number < 1:
        raise ValueError("an anchor names an entry: its sequence number is at least 1")
    if not HASH_FORMAT.fullmatch(entry_hash):
        raise ValueError("entry_hash is 128 lowercase hex characters")
    if not TIMESTAMP_FORMAT.fullmatch(anchored_at):
        raise ValueError("anchored_at is YYYY-MM-DDTHH:MM:SS.ffffffZ")
    lines = (
        ANCHOR_STATEMENT,
        f"sequence_number={sequence_number}",
        f"entry_hash={entry_hash}",
        f"anchored_at={anchored_at}",
    )
    return "".join(f"{line}\n" for line in lines).encode("ascii")


@dataclass(frozen=True, slots=True)
class AuditAnchor:
    sequence_number: int
    entry_hash: str
    anchored_at: str  # canonical timestamp
    signing_key_id: str  # SHA-256 hex of the signing key's DER SubjectPublicKeyInfo
    signature: str  # base64 of the DER signature

    def signing_input(self) -> bytes:
        return anchor_signing_input(
            sequence_number=self.sequence_number,
            entry_hash=self.entry_hash,
            anchored_at=self.anchored_at,
        )

    @property
    def ref(self) -> AnchorRef:
        return AnchorRef(self.sequence_number, self.entry_hash, self.anchored_at)

    def encode(self) -> bytes:
        record = {
            "format": ANCHOR_FILE_FORMAT,
            "version": ANCHOR_FILE_VERSION,
            "sequence_number": self.sequence_number,
            "entry_hash": self.entry_hash,
            "anchored_at": self.anchored_at,
            "signing_key_id": self.signing_key_id,
            "signature": self.signature,
        }
        return (json.dumps(record, separators=(",", ":")) + "\n").encode("ascii")


def decode_anchor(data: bytes) -> AuditAnchor:
    """The anchor in a file's bytes (its signature not yet checked); ``AnchorMalformed`` for
    anything else."""
    try:
        record: Any = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise AnchorMalformed("the anchor file is not JSON") from None
    if not isinstance(record, dict) or set(record) != _FILE_KEYS:
        raise AnchorMalformed("the anchor file does not have the anchor's fields")
    if (record["format"], record["version"]) != (ANCHOR_FILE_FORMAT, ANCHOR_FILE_VERSION):
        raise AnchorMalformed("not an anchor of a known format and version")
    sequence_number = record["sequence_number"]
    strings = [record[name] for name in ("entry_hash", "anchored_at", "signing_key_id")]
    if type(sequence_number) is not int or not all(type(v) is str for v in strings):
        raise AnchorMalformed("an anchor field has the wrong type")
    if type(record["signature"]) is not str or not _KEY_ID.fullmatch(record["signing_key_id"]):
        raise AnchorMalformed("an anchor field has the wrong type")
    anchor = AuditAnchor(
        sequence_number=sequence_number,
        entry_hash=record["entry_hash"],
        anchored_at=record["anchored_at"],
        signing_key_id=record["signing_key_id"],
        signature=record["signature"],
    )
    try:
        anchor.signing_input()
    except ValueError as exc:
        raise AnchorMalformed(str(exc)) from None
    return anchor


@dataclass(frozen=True, slots=True)
class AnchorReading:
    """What the key store holds: a verified anchor, nothing, or something that is not a valid
    anchor (malformed, or a signature that does not verify under the audit signing key)."""

    anchor: AuditAnchor | None
    invalid: bool = False

    @property
    def missing(self) -> bool:
        return self.anchor is None and not self.invalid


NO_ANCHOR = AnchorReading(None)
INVALID_ANCHOR = AnchorReading(None, invalid=True)


def is_advance_due(last_advanced: datetime | None, now: datetime, interval_seconds: int) -> bool:
    """Whether a process that last advanced the anchor at ``last_advanced`` (``None``: never)
    must advance it now. A clock that went back counts as due rather than as a long wait."""
    if last_advanced is None or now < last_advanced:
        return True
    return (now - last_advanced).total_seconds() >= interval_seconds


def replaces(current: AuditAnchor | None, sequence_number: int) -> bool:
    """Whether an anchor at ``sequence_number`` moves the mark forward: never backwards, and
    never sideways (a second hash for the same entry is not progress)."""
    return current is None or sequence_number > current.sequence_number


def anchor_problem(
    reading: AnchorReading,
    *,
    first: int,
    last: int,
    head: int,
    reaches_head: bool,
    hash_at_anchor: str | None,
) -> tuple[int, ValidationReason] | None:
    """Rule 11 of validation: does a chain whose range ``first..last`` passed rules 1-9 reach
    the anchor? ``head``: the chain head's sequence; ``reaches_head``: whether the range runs
    to it; ``hash_at_anchor``: the stored hash of the entry at the anchor's sequence, when that
    lies in the range. The first problem as ``(first_invalid_sequence, reason)``:

    * ``ANCHOR_MISSING`` (at 1) — to the head, the chain has entries and there is no anchor;
    * ``ANCHOR_INVALID`` (at 1) — to the head, the anchor file is not a valid, signed anchor;
    * ``BEHIND_ANCHOR`` (at head + 1) — to the head, the chain ends before the anchor: entries
      the gateway committed were cut;
    * ``ANCHOR_MISMATCH`` (at the anchor's sequence) — the entry there has another hash: the
      history up to it was replaced.

    A range that ends before the head is checked only when it contains the anchor's entry.
    """
    anchor = reading.anchor
    if anchor is None:
        if reaches_head and reading.invalid:
            return 1, ValidationReason.ANCHOR_INVALID
        if reaches_head and head > 0:
            return 1, ValidationReason.ANCHOR_MISSING
        return None
    if reaches_head and head < anchor.sequence_number:
        return head + 1, ValidationReason.BEHIND_ANCHOR
    if first <= anchor.sequence_number <= last and hash_at_anchor != anchor.entry_hash:
        return anchor.sequence_number, ValidationReason.ANCHOR_MISMATCH
    return None
