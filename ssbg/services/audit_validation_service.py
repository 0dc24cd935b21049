"""Validating the audit chain: the one service behind ``POST /audit/validate`` and
``ssbg audit verify`` (database), and the offline check of an evidence bundle
(``ssbg audit verify --bundle``). The rules themselves are ``domain.audit_verification``.

Trust: checkpoint signatures are checked against the audit signing key of the *key store*
(its public half, derived from the password-protected private key), never against the key
row in the database, which anyone able to rewrite the chain could replace. A bundle is checked
against the key its header names unless the auditor pins a key they obtained independently.
"""

import asyncio
import gc
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing, contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from ssbg.domain.audit_bundle import (
    ENTRY_PREFIX,
    BundleHeader,
    decode_line,
    parse_checkpoint,
    parse_end,
    parse_entry,
    parse_header,
    record_type,
)
from ssbg.domain.audit_chain import GENESIS_HASH
from ssbg.domain.audit_checkpoint import Checkpoint
from ssbg.domain.audit_events import AUDIT_RESOURCE, AuditEvent
from ssbg.domain.audit_verification import (
    ChainVerifier,
    EntryColumns,
    EntryTuple,
    HeadRef,
    SequenceRange,
    ValidationResult,
    entries_from_columns,
)
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import BundleMalformed, SsbgError, ValidationNotRecorded
from ssbg.domain.identity import Principal, RequestContext
from ssbg.infrastructure.crypto.audit_signing import CheckpointSignatureCheck, CheckpointSigner
from ssbg.repositories.audit_repository import AuditRepository
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import Database

BATCH_SIZE = 5000
T = TypeVar("T")


class AuditValidationService:
    def __init__(
        self, db: Database, trail: AuditTrail, signer: CheckpointSigner, checkpoint_interval: int
    ) -> None:
        self._db = db
        self._trail = trail
        self._signer = signer
        self._checkpoint_interval = checkpoint_interval

    async def validate_chain(
        self,
        principal: Principal | None,
        context: RequestContext,
        requested: SequenceRange,
        *,
        via: str,
    ) -> ValidationResult:
        """Validate ``requested`` and record ``AUDIT_VALIDATE`` with the result (``FAILED``
        when the chain is invalid; ``details.full_chain`` tells a whole-chain validation).

        Raises ``ValidationNotRecorded`` (carrying the result) when the record cannot be made.
        """
        result, full_chain = await self.check_chain(requested)
        event = AuditEvent.by(
            principal,
            context,
            AuditAction.AUDIT_VALIDATE,
            AUDIT_RESOURCE,
            AuditResult.SUCCESS if result.valid else AuditResult.FAILED,
            via=via,
            from_sequence=requested.from_sequence,
            to_sequence=requested.to_sequence,
            full_chain=full_chain,
            validation=result.as_dict(),
        )
        try:
            async with self._db.transaction(write=True) as tx:
                await self._trail.append(tx, event)
        except SsbgError:
            raise ValidationNotRecorded(result) from None
        return result

    async def check_chain(self, requested: SequenceRange) -> tuple[ValidationResult, bool]:
        """The result, and whether the range was the whole chain. Records nothing."""
        signature_valid = CheckpointSignatureCheck.of_pems(
            [(await self._signer.key_info()).public_key_pem]
        )
        async with self._db.snapshot() as tx:
            head = await tx.audit.get_head()
            requested.check_start(head.sequence_number)
            first = requested.first
            reaches_head = requested.reaches(head.sequence_number)
            upper = None if reaches_head else requested.to_sequence
            anchor = (
                GENESIS_HASH if first == 1 else await tx.audit.get_entry_hash_or_none(first - 1)
            )
            verifier = ChainVerifier(
                first_sequence=first,
                anchor_hash=anchor,
                signature_valid=signature_valid,
                checkpoint_interval=self._checkpoint_interval,
            )
            await _feed(verifier, tx.audit, first, upper)
        result = verifier.finish(
            head=HeadRef(sequence=head.sequence_number, hash=head.entry_hash),
            expected_last_sequence=head.sequence_number if reaches_head else upper,
            expected_last_hash=head.entry_hash if reaches_head else None,
        )
        return result, first == 1 and reaches_head


async def _feed(
    verifier: ChainVerifier, audit: AuditRepository, first: int, upper: int | None
) -> None:
    async with aclosing(_read_ahead(_batches(audit, first, upper))) as batches:
        async for rows, checkpoints in batches:
            verifier.add_checkpoints(checkpoints)
            with _collector_paused():
                if rows and not verifier.add_entries(entries_from_columns(rows)):
                    return


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while one batch is verified.

    Verifying allocates a handful of short-lived, acyclic objects per entry (freed by
    reference counting); with a batch of rows alive, every collection those allocations
    trigger scans the rows again — about a fifth of the validation time. The step is
    synchronous (no other task runs meanwhile), and the previous state is restored.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _batches(
    audit: AuditRepository, first: int, upper: int | None
) -> AsyncGenerator[tuple[list[EntryColumns], list[Checkpoint]], None]:
    """Entry batches, each with the checkpoints up to its last entry (checkpoints are queued
    before the entries they name); then the first checkpoint after the last entry, if any:
    one is all it takes to show a cut tail."""
    checkpoints_from = first
    async with aclosing(audit.entry_column_batches(first, upper, BATCH_SIZE)) as entries:
        async for rows in entries:
            through = rows[-1][0]
            yield rows, await audit.checkpoints_between(checkpoints_from, through)
            checkpoints_from = through + 1
    yield [], await audit.checkpoints_between(checkpoints_from, upper, limit=1)


async def _read_ahead(source: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """``source``'s items, each handed over once the read of the next one has begun: the
    database produces the next batch while the caller verifies this one (CPU-bound).
    Only one read is ever in flight, so the connection is never used concurrently."""
    pending = asyncio.ensure_future(anext(source, None))
    try:
        while (item := await pending) is not None:
            pending = asyncio.ensure_future(anext(source, None))
            await asyncio.sleep(0)  # let the next read reach the database first
            yield item
    finally:
        if not pending.done():
            # Stopped early: the read in flight must finish before the transaction ends.
            with suppress(Exception):
                await pending
        await source.aclose()


# -- offline: an evidence bundle ------------------------------------------------------------


def verify_bundle(path: Path, trusted_public_keys: list[str] | None = None) -> ValidationResult:
    """Verify a bundle file with no database and no network.

    ``trusted_public_keys``: PEM public keys (already known to parse) the auditor obtained
    independently; checkpoints must be signed by one of them. ``None`` trusts the key in the
    bundle's header, which
    proves the bundle is internally consistent — not who made it.
    Raises ``BundleMalformed`` when the file is not a complete bundle in the documented format.
    """
    header, checkpoints = _read_outline(path)
    if trusted_public_keys is not None:
        signature_valid = CheckpointSignatureCheck.of_pems(trusted_public_keys)
    else:
        try:
            signature_valid = CheckpointSignatureCheck.of_pems([header.public_key_pem])
        except ValueError:
            raise BundleMalformed("The header's signing key is not an EC P-384 key.") from None
    verifier = ChainVerifier(
        first_sequence=header.from_sequence,
        anchor_hash=header.anchor_hash,
        signature_valid=signature_valid,
        checkpoint_interval=header.checkpoint_interval,
    )
    verifier.add_checkpoints(checkpoints)
    for batch in _entry_batches(path):
        if not verifier.add_entries(batch):
            break
    reaches_head = header.to_sequence >= header.chain_head.sequence
    return verifier.finish(
        head=header.chain_head,
        expected_last_sequence=header.to_sequence,
        expected_last_hash=header.chain_head.hash if reaches_head else None,
    )


def _read_outline(path: Path) -> tuple[BundleHeader, list[Checkpoint]]:
    """First pass: the header, every checkpoint, and the order of the records."""
    header: BundleHeader | None = None
    checkpoints: list[Checkpoint] = []
    phase = "header"
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if header is None:
                header = parse_header(decode_line(line, number), number)
                phase = "entry"
                continue
            kind = "entry" if line.startswith(ENTRY_PREFIX) else None
            record = None
            if kind is None:
                record = decode_line(line, number)
                kind = record_type(record, number)
            order = ("entry", "checkpoint", "end")
            if phase == "end" or kind == "header" or order.index(kind) < order.index(phase):
                raise BundleMalformed(f"Line {number}: a {kind} record is out of order.")
            phase = kind
            if record is None:
                continue
            if kind == "checkpoint":
                checkpoint = parse_checkpoint(record, number)
                if checkpoints and checkpoint.sequence_number <= checkpoints[-1].sequence_number:
                    raise BundleMalformed(f"Line {number}: checkpoints must ascend.")
                checkpoints.append(checkpoint)
            elif kind == "end":
                parse_end(record, number)
    if header is None:
        raise BundleMalformed("The bundle is empty.")
    if phase != "end":
        raise BundleMalformed("The bundle is incomplete: it has no end record.")
    return header, checkpoints


def _entry_batches(path: Path) -> Iterator[list[EntryTuple]]:
    """Second pass: the entries, parsed, in batches (memory stays flat)."""
    batch: list[EntryTuple] = []
    with path.open("rb") as lines:
        next(lines)  # the header
        for number, line in enumerate(lines, start=2):
            record = decode_line(line, number)
            if record.get("type") != "entry":
                break
            batch.append(parse_entry(record, number))
            if len(batch) == BATCH_SIZE:
                yield batch
                batch = []
    if batch:
        yield batch
