"""Validation of the audit chain (SPEC §3, §7): the rules, pure, for a database and a bundle alike.

:class:`ChainVerifier` consumes the entries of a range in ascending sequence order, in batches
(so memory stays flat however long the chain), together with the signed checkpoints of that
range, and stops at the first problem. The checks, in the order they are applied:

for each entry
  1. ``SEQUENCE_GAP`` - its sequence number is not the one expected (first of the range, then
     one more than the previous entry); reported at the expected sequence.
  2. ``LINK_BROKEN`` - its ``prev_hash`` is not the previous entry's ``entry_hash`` (for the
     first entry of a range: the anchor, ``GENESIS_HASH`` or the hash of the entry before the
     range).
  3. ``HASH_MISMATCH`` - ``SHA-512(prev_hash ‖ canonical JSON)`` is not its ``entry_hash``, or
     its content has no canonical form (a floating-point number in ``details``).
  then, if a checkpoint names this sequence:
  4. ``CHECKPOINT_SIGNATURE_INVALID`` - the signature does not verify under a trusted key.
  5. ``CHECKPOINT_MISMATCH`` - the checkpoint's ``previous_checkpoint_sequence`` names a
     checkpoint that is missing (reported at that sequence), or contradicts the previous one.
  6. ``CHECKPOINT_MISMATCH`` - the signed hash is not the entry's ``entry_hash``: the entry
     was rewritten with recomputed hashes.
after the last entry
  7. ``CHECKPOINT_BEYOND_HEAD`` - a checkpoint names a sequence after the last entry: the tail
     was cut. Reported at the first missing sequence (last entry + 1).
  8. The chain head (the ``audit_chain_head`` row, or a bundle's header) is a second anchor:
     entries that stop before it or run past it are ``SEQUENCE_GAP`` (at the first sequence
     that disagrees); a last entry whose hash differs from the head's is ``HASH_MISMATCH``.
  9. ``CHECKPOINT_MISMATCH`` - when the range runs to the head: the chain runs past the
     sequence where the next checkpoint had to be written, judged by the largest of the last
     checkpoint's signed interval, the intervals ``SYSTEM_START`` entries declared since it
     (each gateway process names the interval it appends with), and — beside a checkpoint —
     the configured one: so a changed setting never raises a false alarm; offline, with no
     configured interval, the signed and declared ones alone — never a bundle's unsigned
     header; reported at that sequence. This is what makes deleting the
     checkpoints along with a rewritten tail evident.

Then rule 11: the chain must reach the audit anchor the key store keeps, with the same hash
(``domain.audit_anchor``, applied by the validation service); and for a bundle, rules 10-12 —
what its signatures cover (``domain.audit_bundle_checks``).

A long range can be checked in contiguous segments, each by its own verifier (in its own
process): segment *k* starts from the stored hash of the entry before it and from the last
stored checkpoint before it — the state one verifier would have reached there, since the
previous segment verified both —, a segment other than the final one must reach its end, and
only the final segment applies rules 7-9. The segments all pass exactly when one pass over the
range passes. Where the first problem is reported, and why, is one pass's to say (a cut tail,
for instance, looks like a gap to the segment it ends in): a range that fails in segments is
validated again in one pass for its report.
"""

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ssbg.domain.audit_chain import NotCanonical, canonical_entry_text, entry_hash_of
from ssbg.domain.audit_checkpoint import Checkpoint, next_checkpoint_after
from ssbg.domain.errors import NotFound, ValidationFailed


class ValidationReason(StrEnum):
    HASH_MISMATCH = "HASH_MISMATCH"
    LINK_BROKEN = "LINK_BROKEN"
    SEQUENCE_GAP = "SEQUENCE_GAP"
    CHECKPOINT_MISMATCH = "CHECKPOINT_MISMATCH"
    CHECKPOINT_SIGNATURE_INVALID = "CHECKPOINT_SIGNATURE_INVALID"
    CHECKPOINT_BEYOND_HEAD = "CHECKPOINT_BEYOND_HEAD"
    # The audit anchor (``domain.audit_anchor``): the database's chain against the key store.
    BEHIND_ANCHOR = "BEHIND_ANCHOR"
    ANCHOR_MISMATCH = "ANCHOR_MISMATCH"
    ANCHOR_MISSING = "ANCHOR_MISSING"
    ANCHOR_INVALID = "ANCHOR_INVALID"
    # Evidence bundles (``domain.audit_bundle_checks``): what the signatures cover.
    SIGNED_HEAD_MISSING = "SIGNED_HEAD_MISSING"
    SIGNED_HEAD_SIGNATURE_INVALID = "SIGNED_HEAD_SIGNATURE_INVALID"
    SIGNED_HEAD_MISMATCH = "SIGNED_HEAD_MISMATCH"
    UNCOVERED_ENTRIES = "UNCOVERED_ENTRIES"
    CERTIFICATE_INVALID = "CERTIFICATE_INVALID"


@dataclass(frozen=True, slots=True)
class HeadRef:
    sequence: int
    hash: str


@dataclass(frozen=True, slots=True)
class AnchorRef:
    """The audit anchor a validation was checked against (its signature already verified)."""

    sequence: int
    hash: str
    anchored_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "hash": self.hash, "anchored_at": self.anchored_at}


@dataclass(frozen=True, slots=True)
class ValidationResult:
    valid: bool
    entries_checked: int
    first_invalid_sequence: int | None
    reason: ValidationReason | None
    head: HeadRef
    checkpoints_verified: int
    anchor: AnchorRef | None = None  # database validations: the anchor it was checked against

    def as_dict(self) -> dict[str, Any]:
        """The contract's shape (SPEC §3), shared by the API, the CLI and the audit entry."""
        anchor = self.anchor
        return {
            "valid": self.valid,
            "entries_checked": self.entries_checked,
            "first_invalid_sequence": self.first_invalid_sequence,
            "reason": self.reason.value if self.reason else None,
            "head": {"sequence": self.head.sequence, "hash": self.head.hash},
            "checkpoints_verified": self.checkpoints_verified,
            "anchor": None if anchor is None else anchor.as_dict(),
        }

    def failed(self, sequence_number: int, reason: ValidationReason) -> "ValidationResult":
        """This result, invalid at ``sequence_number`` for ``reason`` (a check made after the
        chain's own rules; a result that is already invalid keeps its first problem)."""
        if not self.valid:
            return self
        return replace(self, valid=False, first_invalid_sequence=sequence_number, reason=reason)


@dataclass(frozen=True, slots=True)
class SequenceRange:
    """A requested range; ``None`` ends mean "from the first entry" / "to the head"."""

    from_sequence: int | None = None
    to_sequence: int | None = None

    def __post_init__(self) -> None:
        for name in ("from_sequence", "to_sequence"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValidationFailed(details={name: "must be at least 1"})
        if (
            self.from_sequence is not None
            and self.to_sequence is not None
            and self.to_sequence < self.from_sequence
        ):
            raise ValidationFailed(details={"to_sequence": "must not be below from_sequence"})

    @property
    def first(self) -> int:
        return self.from_sequence or 1

    def reaches(self, head: int) -> bool:
        return self.to_sequence is None or self.to_sequence >= head

    def check_start(self, head: int) -> None:
        """A range must start at an entry that exists: one past the head is a 404 (the entries
        asked for do not exist yet), not a malformed request."""
        if self.first > 1 and self.first > head:
            raise NotFound(
                f"No audit entry {self.first}: the chain head is sequence {head}.",
                {"from_sequence": f"beyond the chain head (sequence {head})"},
            )


# One entry as the verifier reads it: (sequence_number, canonical JSON of its hashed fields —
# None when the stored content has no canonical form —, prev_hash, entry_hash).
EntryTuple = tuple[int, str | None, str, str]
_DECLARATION = '"checkpoint_interval":'  # only SYSTEM_START entries are parsed for it
# One entry as stored in columns, every value already in its canonical text form except
# ``details``, which is JSON text: (sequence_number, event_id, occurred_at, actor_id,
# actor_role, action, resource, result, details_json, source_ip, request_id, incident_level,
# prev_hash, entry_hash).
EntryColumns = tuple[
    int, str, str, str | None, str | None, str, str, str, str, str | None, str | None, int, str, str
]

SignatureCheck = Callable[[Checkpoint], bool]


def _refuse_float(text: str) -> Any:
    raise ValueError(f"floating-point number {text} in audit details")


_details_decoder = json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_float)


def _parse_details(text: str) -> Any:
    """Stored ``details`` JSON; floats refused. ``raw_decode`` first: the common case without
    surrounding whitespace skips ``decode``'s two regular-expression scans."""
    try:
        value, end = _details_decoder.raw_decode(text)
        if end == len(text):
            return value
    except ValueError:
        pass
    return _details_decoder.decode(text)


def entries_from_columns(rows: Iterable[EntryColumns]) -> Iterator[EntryTuple]:
    """Stored columns to verifier input; content with no canonical form becomes ``None``."""
    for row in rows:
        sequence_number, prev_hash, entry_hash = row[0], row[12], row[13]
        try:
            details = _parse_details(row[8])
            if not isinstance(details, dict):
                raise NotCanonical("details is not a JSON object")
            text = canonical_entry_text(
                row[1], sequence_number, row[2], row[3], row[4], row[5], row[6], row[7],
                details, row[9], row[10], row[11],
            )  # fmt: skip
        except (ValueError, TypeError):  # NotCanonical is a ValueError
            yield sequence_number, None, prev_hash, entry_hash
            continue
        yield sequence_number, text, prev_hash, entry_hash


def _hash_or_none(prev_hash: str, canonical_text: str) -> str | None:
    try:
        return entry_hash_of(prev_hash, canonical_text)
    except NotCanonical:
        return None


class ChainVerifier:
    """Validates one range ``[first_sequence, …]`` of the chain, stopping at the first problem.

    Feed checkpoints (ascending) with :meth:`add_checkpoints` before the entries they name,
    entries (ascending) with :meth:`add_entries`, then call :meth:`finish`.
    """

    def __init__(
        self,
        *,
        first_sequence: int,
        anchor_hash: str | None,
        signature_valid: SignatureCheck,
        checkpoint_interval: int | None,
        range_start: int | None = None,
        previous_checkpoint: Checkpoint | None = None,
    ) -> None:
        """``anchor_hash``: the ``prev_hash`` the first entry must carry (``GENESIS_HASH`` for a
        range from 1), ``None`` when the entry before the range is missing.
        ``checkpoint_interval``: the configured interval, for rule 9 (``None`` to skip it).
        For one segment of a longer range: ``range_start``, where that range starts, and
        ``previous_checkpoint``, the last checkpoint before this segment (``None``: none since
        ``range_start``) — the state one verifier would have reached at this segment's start.
        """
        self._first_sequence = first_sequence
        self._range_start = first_sequence if range_start is None else range_start
        self._next_sequence = first_sequence
        self._last_hash = anchor_hash
        self._signature_valid = signature_valid
        self._configured_interval = checkpoint_interval
        self._pending: deque[Checkpoint] = deque()
        self._last_checkpoint = previous_checkpoint
        # The largest checkpoint interval a SYSTEM_START entry declared since the last
        # checkpoint (rule 9).
        self._declared_interval: int | None = None
        self._last_queued = 0
        self.entries_checked = 0
        self.checkpoints_verified = 0
        self.failure: tuple[int, ValidationReason] | None = None

    @property
    def last_sequence(self) -> int:
        """The last entry checked (``first_sequence - 1`` before any)."""
        return self._next_sequence - 1

    @property
    def last_hash(self) -> str | None:
        """The hash of the last entry checked (the anchor hash before any)."""
        return self._last_hash

    @property
    def last_checkpoint_sequence(self) -> int | None:
        """The last checkpoint verified (``None``: none yet)."""
        return None if self._last_checkpoint is None else self._last_checkpoint.sequence_number

    def add_checkpoints(self, checkpoints: Iterable[Checkpoint]) -> None:
        for checkpoint in checkpoints:
            if checkpoint.sequence_number <= self._last_queued:
                raise ValueError("checkpoints must be added once each, in ascending order")
            self._last_queued = checkpoint.sequence_number
            self._pending.append(checkpoint)

    def add_entries(self, entries: Iterable[EntryTuple]) -> bool:
        """Check ``entries``; False once a problem was found (the rest need not be read)."""
        if self.failure is not None:
            return False
        expected = self._next_sequence
        last_hash = self._last_hash
        pending = self._pending
        checked = 0
        try:
            for sequence_number, canonical, prev_hash, entry_hash in entries:
                if sequence_number != expected:
                    self._fail(expected, ValidationReason.SEQUENCE_GAP)
                    return False
                if prev_hash != last_hash:
                    self._fail(sequence_number, ValidationReason.LINK_BROKEN)
                    return False
                if canonical is None or _hash_or_none(prev_hash, canonical) != entry_hash:
                    self._fail(sequence_number, ValidationReason.HASH_MISMATCH)
                    return False
                checked += 1
                last_hash = entry_hash
                expected += 1
                if _DECLARATION in canonical:
                    self._note_declared_interval(canonical)
                if (
                    pending
                    and pending[0].sequence_number == sequence_number
                    and not self._check_checkpoint(pending.popleft(), entry_hash)
                ):
                    return False
        finally:
            self.entries_checked += checked
            self._next_sequence = expected
            self._last_hash = last_hash
        return True

    def _check_checkpoint(self, checkpoint: Checkpoint, entry_hash: str) -> bool:
        sequence_number = checkpoint.sequence_number
        if not self._signature_valid(checkpoint):
            self._fail(sequence_number, ValidationReason.CHECKPOINT_SIGNATURE_INVALID)
            return False
        previous = checkpoint.previous_checkpoint_sequence
        if self._last_checkpoint is None:
            # The first checkpoint of the range: its predecessor must lie before the range.
            if previous >= self._range_start:
                self._fail(previous, ValidationReason.CHECKPOINT_MISMATCH)
                return False
        elif previous != self._last_checkpoint.sequence_number:
            missing = previous > self._last_checkpoint.sequence_number
            self._fail(
                previous if missing else sequence_number, ValidationReason.CHECKPOINT_MISMATCH
            )
            return False
        if checkpoint.entry_hash != entry_hash:
            self._fail(sequence_number, ValidationReason.CHECKPOINT_MISMATCH)
            return False
        self.checkpoints_verified += 1
        self._last_checkpoint = checkpoint
        self._declared_interval = None  # the checkpoint's signed interval speaks from here
        return True

    def _note_declared_interval(self, canonical: str) -> None:
        """A ``SYSTEM_START`` entry names the checkpoint interval its process appends with."""
        try:
            entry = json.loads(canonical)
            declared = entry["details"]["checkpoint_interval"]
        except (ValueError, KeyError, TypeError):
            return
        if entry.get("action") != "SYSTEM_START" or type(declared) is not int or declared < 1:
            return
        self._declared_interval = max(self._declared_interval or 0, declared)

    def finish(
        self,
        *,
        head: HeadRef,
        expected_last_sequence: int | None,
        expected_last_hash: str | None = None,
        final: bool = True,
    ) -> ValidationResult:
        """Apply rules 7-9 and return the result.

        ``expected_last_sequence``: where the range must end (the head when the range runs to
        it, else the requested end), ``None`` when unknown. ``expected_last_hash``: the head's
        hash, when the range runs to the head. ``final=False`` for a segment that another
        follows: it must reach its end, and rules 7-9 are the final segment's to apply.
        """
        if self.failure is None:
            if final:
                self._check_end(expected_last_sequence, expected_last_hash)
            elif expected_last_sequence is not None and self.last_sequence < expected_last_sequence:
                self._fail(self.last_sequence + 1, ValidationReason.SEQUENCE_GAP)
        sequence, reason = self.failure if self.failure else (None, None)
        return ValidationResult(
            valid=self.failure is None,
            entries_checked=self.entries_checked,
            first_invalid_sequence=sequence,
            reason=reason,
            head=head,
            checkpoints_verified=self.checkpoints_verified,
        )

    def _check_end(self, expected_last: int | None, expected_hash: str | None) -> None:
        last = self.last_sequence
        if self._pending:
            self._fail(last + 1, ValidationReason.CHECKPOINT_BEYOND_HEAD)
            return
        if expected_last is None:
            return
        if last < expected_last:
            self._fail(last + 1, ValidationReason.SEQUENCE_GAP)
            return
        if last > expected_last:
            self._fail(expected_last + 1, ValidationReason.SEQUENCE_GAP)
            return
        if expected_hash is not None and last >= self._first_sequence:
            if self._last_hash != expected_hash:
                self._fail(last, ValidationReason.HASH_MISMATCH)
                return
            self._check_checkpoint_due(last)

    def _check_checkpoint_due(self, last: int) -> None:
        """Rule 9: the chain must not run past the next checkpoint it was due to write."""
        checkpoint = self._last_checkpoint
        if checkpoint is None and self._range_start != 1:
            return  # the range's start is not a known checkpoint position
        after = checkpoint.sequence_number if checkpoint else 0
        # Each stretch of the chain is judged by the interval it was written with: the last
        # checkpoint's signed one, and every interval a gateway declared since (SYSTEM_START);
        # the configured one only beside a checkpoint, never alone — a chain with no
        # checkpoint yet and no declaration (written before declarations) is not judged by
        # today's setting.
        intervals = [
            interval
            for interval in (
                checkpoint.checkpoint_interval if checkpoint else None,
                self._configured_interval if checkpoint else None,
                self._declared_interval,
            )
            if interval is not None
        ]
        if not intervals:
            return
        due = max(next_checkpoint_after(after, interval) for interval in intervals)
        if due <= last:
            self._fail(due, ValidationReason.CHECKPOINT_MISMATCH)

    def _fail(self, sequence_number: int, reason: ValidationReason) -> None:
        self.failure = (sequence_number, reason)


# The shortest segment worth a worker process of its own: ranges shorter than twice this are
# checked in one pass.
DEFAULT_SEGMENT_ENTRIES = 100_000


def split_range(first: int, last: int, parts: int, min_entries: int) -> list[tuple[int, int]]:
    """``first..last`` as at most ``parts`` contiguous segments of about equal length, none
    shorter than ``min_entries`` (one segment when the range is too short to split)."""
    count = last - first + 1
    parts = max(1, min(parts, count // max(min_entries, 1)))
    bounds = [first + count * index // parts for index in range(parts + 1)]
    return [(bounds[index], bounds[index + 1] - 1) for index in range(parts)]


def combine_segments(results: Iterable[ValidationResult]) -> ValidationResult:
    """The segments' results (in order) as one: valid with the totals and the head the final
    segment validated against, or the first failure in sequence order (see the module's
    docstring for why a failure is then validated again in one pass)."""
    entries = checkpoints = 0
    result: ValidationResult | None = None
    for result in results:
        entries += result.entries_checked
        checkpoints += result.checkpoints_verified
        if not result.valid:
            break
    if result is None:
        raise ValueError("no segments to combine")
    return replace(result, entries_checked=entries, checkpoints_verified=checkpoints)
