"""Validating the audit chain: the one service behind ``POST /audit/validate`` and
``ssbg audit verify`` (database). The rules themselves are ``domain.audit_verification``; the
offline check of an evidence bundle (``ssbg audit verify --bundle``) is
``services.audit_bundle_verification``.

Trust: checkpoint signatures are checked against the audit signing key of the *key store*
(its public half, derived from the password-protected private key), never against the key
row in the database, which anyone able to rewrite the chain could replace.

The chain must also reach the audit anchor, the signed high-water mark the key store keeps
(``domain.audit_anchor``, rule 11): a history replaced or cut below it is reported even where
no checkpoint vouches for it. The anchor is read *before* the database snapshot: it only ever
names committed entries, so every entry it names is in any snapshot taken after it (read the
other way round, an append committed in between could look like a cut chain).
"""

import asyncio
import gc
import multiprocessing
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import aclosing, contextmanager, suppress
from dataclasses import dataclass, replace
from multiprocessing.context import ForkServerContext
from typing import TypeVar

import structlog

from ssbg.domain.audit_anchor import AnchorReading, anchor_problem
from ssbg.domain.audit_checkpoint import Checkpoint
from ssbg.domain.audit_events import AUDIT_RESOURCE, AuditEvent
from ssbg.domain.audit_verification import (
    DEFAULT_SEGMENT_ENTRIES,
    ChainVerifier,
    EntryColumns,
    HeadRef,
    SequenceRange,
    ValidationResult,
    combine_segments,
    entries_from_columns,
    split_range,
)
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import DatabaseUnavailable, SsbgError, ValidationNotRecorded
from ssbg.domain.identity import Actor
from ssbg.infrastructure.crypto.audit_signing import CheckpointSignatureCheck, CheckpointSigner
from ssbg.repositories.audit_repository import AuditRepository, ChainHead
from ssbg.services.audit_anchor import AnchorKeeper
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork, open_database

BATCH_SIZE = 5000
T = TypeVar("T")
log = structlog.get_logger("ssbg.audit")


class AuditValidationService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        signer: CheckpointSigner,
        checkpoint_interval: int,
        anchor: AnchorKeeper,
        *,
        workers: int = 1,
        segment_entries: int = DEFAULT_SEGMENT_ENTRIES,
    ) -> None:
        """``workers``: processes a long range is split over (1: never split);
        ``segment_entries``: the shortest segment worth a process of its own."""
        self._db = db
        self._trail = trail
        self._signer = signer
        self._anchor = anchor
        self._checkpoint_interval = checkpoint_interval
        self._workers = workers
        self._segment_entries = segment_entries

    async def validate_chain(
        self,
        actor: Actor | None,
        requested: SequenceRange,
        *,
        via: str,
    ) -> ValidationResult:
        """Validate ``requested`` and record ``AUDIT_VALIDATE`` with the result (``FAILED``
        when the chain is invalid; ``details.full_chain`` tells a whole-chain validation).

        Raises ``ValidationNotRecorded`` (carrying the result) when the record cannot be made.
        """
        checked = await self.check_chain(requested)
        result = checked.result
        event = AuditEvent.by(
            actor,
            AuditAction.AUDIT_VALIDATE,
            AUDIT_RESOURCE,
            AuditResult.SUCCESS if result.valid else AuditResult.FAILED,
            via=via,
            from_sequence=requested.from_sequence,
            to_sequence=requested.to_sequence,
            full_chain=checked.whole_chain,
            segments=checked.segments,
            validation=result.as_dict(),
        )
        try:
            async with self._db.transaction(write=True) as tx:
                await self._trail.append(tx, event)
        except SsbgError:
            raise ValidationNotRecorded(result) from None
        return result

    async def check_chain(self, requested: SequenceRange) -> "ChainCheck":
        """The result, whether the range was the whole chain, and in how many segments it was
        checked. Records nothing.

        A long range is checked in segments by worker processes (``audit_verification``
        explains why that is sound); if they find a problem, the range is checked again in
        one pass, which alone says exactly where the first problem is and why.
        """
        trusted = [(await self._signer.key_info()).public_key_pem]
        anchor = await self._anchor.read()  # before the snapshot: see the module's docstring
        async with self._db.snapshot() as tx:
            head = await tx.audit.get_head()
            requested.check_start(head.sequence_number)
            first = requested.first
            reaches_head = requested.reaches(head.sequence_number)
            whole_chain = first == 1 and reaches_head
            last = head.sequence_number if reaches_head else requested.to_sequence or first
            segments = split_range(first, last, self._workers, self._segment_entries)
            if len(segments) == 1:
                result = await self._check_in_one_pass(tx, requested, trusted, head)
                result = await _against_anchor(tx.audit, result, anchor, requested)
                return ChainCheck(result, whole_chain, segments=1)
            jobs = await self._segment_jobs(tx, segments, first, reaches_head, trusted, head)
        result = await check_segments(jobs)
        async with self._db.snapshot() as tx:
            if not result.valid:
                head = await tx.audit.get_head()
                result = await self._check_in_one_pass(tx, requested, trusted, head)
            result = await _against_anchor(tx.audit, result, anchor, requested)
        return ChainCheck(result, whole_chain, segments=len(jobs))

    async def _check_in_one_pass(
        self, tx: UnitOfWork, requested: SequenceRange, trusted: list[str], head: ChainHead
    ) -> ValidationResult:
        """One verifier over ``requested``, against ``head`` as read in ``tx``'s snapshot."""
        first = requested.first
        reaches_head = requested.reaches(head.sequence_number)
        upper = None if reaches_head else requested.to_sequence
        verifier = ChainVerifier(
            first_sequence=first,
            anchor_hash=await tx.audit.hash_before(first),
            signature_valid=CheckpointSignatureCheck.of_pems(trusted),
            checkpoint_interval=self._checkpoint_interval,
        )
        await _feed(verifier, tx.audit, first, upper)
        return verifier.finish(
            head=head.ref,
            expected_last_sequence=head.sequence_number if reaches_head else upper,
            expected_last_hash=head.entry_hash if reaches_head else None,
        )

    async def _segment_jobs(
        self,
        tx: UnitOfWork,
        segments: list[tuple[int, int]],
        range_start: int,
        reaches_head: bool,
        trusted: list[str],
        head: ChainHead,
    ) -> list["SegmentJob"]:
        """Each segment's starting state, read in this one snapshot: the stored hash of the
        entry before it and the last checkpoint before it (within the range)."""
        jobs = []
        for index, (segment_first, segment_last) in enumerate(segments):
            final = index == len(segments) - 1
            before = await tx.audit.last_checkpoint_between(range_start, segment_first - 1)
            jobs.append(
                SegmentJob(
                    database_url=self._db.url,
                    trusted_public_keys=trusted,
                    checkpoint_interval=self._checkpoint_interval,
                    range_start=range_start,
                    first=segment_first,
                    last=segment_last,
                    anchor_hash=await tx.audit.hash_before(segment_first),
                    previous_checkpoint=before,
                    final=final,
                    to_head=final and reaches_head,
                    head=head.ref,
                )
            )
        return jobs


async def _against_anchor(
    audit: AuditRepository,
    result: ValidationResult,
    reading: AnchorReading,
    requested: SequenceRange,
) -> ValidationResult:
    """``result`` with rule 11 applied: the chain must reach the anchor with the same hash.
    One indexed read, of the entry at the anchor's sequence, when the range contains it."""
    anchor = reading.anchor
    if anchor is not None:
        result = replace(result, anchor=anchor.ref)
    if not result.valid:
        return result
    head = result.head.sequence
    reaches_head = requested.reaches(head)
    first, last = requested.first, head if reaches_head else requested.to_sequence or head
    in_range = anchor is not None and first <= anchor.sequence_number <= last
    problem = anchor_problem(
        reading,
        first=first,
        last=last,
        head=head,
        reaches_head=reaches_head,
        hash_at_anchor=await audit.hash_before(anchor.sequence_number + 1)
        if anchor is not None and in_range
        else None,
    )
    return result if problem is None else result.failed(*problem)


@dataclass(frozen=True, slots=True)
class ChainCheck:
    result: ValidationResult
    whole_chain: bool  # the range ran from 1 to the head
    segments: int  # worker processes the range was split over (1: one pass only)


@dataclass(frozen=True, slots=True)
class SegmentJob:
    """One segment for a worker process: where it starts from, and how it must end."""

    database_url: str
    trusted_public_keys: list[str]
    checkpoint_interval: int
    range_start: int
    first: int
    last: int
    anchor_hash: str | None
    previous_checkpoint: Checkpoint | None
    final: bool
    to_head: bool  # the final segment of a range to the head: it reads the head itself
    head: HeadRef  # as read when the range was planned


def _worker_context() -> ForkServerContext:
    """Workers forked from a fork server: a fresh interpreter started once per gateway process
    (not a fork of it: nothing of the gateway's memory, keys or connections is inherited) that
    has imported this module, so a worker starts in milliseconds instead of importing the
    gateway's code anew (about 2 CPU-seconds each)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


async def check_segments(jobs: list[SegmentJob]) -> ValidationResult:
    """Run every segment in a process of its own and combine their outcomes in order."""
    pool = ProcessPoolExecutor(max_workers=len(jobs), mp_context=_worker_context())
    try:
        # Submitting starts the workers, and the first start waits for the fork server's
        # imports: on a thread, so the event loop never waits.
        futures = await asyncio.to_thread(lambda: [pool.submit(check_segment, j) for j in jobs])
        outcomes = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
    except SsbgError:
        raise
    except Exception as exc:  # a worker that could not start, read or answer: fail closed
        log.error("audit_validation_worker_failed", error=type(exc).__name__)
        raise DatabaseUnavailable("The audit chain could not be read for validation.") from exc
    finally:
        # Workers are reaped (and the pool's queues released) on a thread, so the event loop
        # never waits; those of a cancelled validation finish their segment first.
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
    return combine_segments(outcomes)


def check_segment(job: SegmentJob) -> ValidationResult:
    """A worker process's whole task: validate one segment over its own connection."""
    return asyncio.run(_check_segment(job))


async def _check_segment(job: SegmentJob) -> ValidationResult:
    # Audit tables only: no sealed row is read, so no integrity key is needed.
    db = open_database(job.database_url, pool_size=1)
    try:
        async with db.snapshot() as tx:
            # The final segment of a range to the head validates up to the head as it reads
            # it now (appends may have moved it since the range was planned).
            stored = await tx.audit.get_head() if job.to_head else None
            verifier = ChainVerifier(
                first_sequence=job.first,
                anchor_hash=job.anchor_hash,
                signature_valid=CheckpointSignatureCheck.of_pems(job.trusted_public_keys),
                checkpoint_interval=job.checkpoint_interval,
                range_start=job.range_start,
                previous_checkpoint=job.previous_checkpoint,
            )
            await _feed(verifier, tx.audit, job.first, None if stored else job.last)
    finally:
        await db.dispose()
    head = stored.ref if stored else job.head
    return verifier.finish(
        head=head,
        expected_last_sequence=head.sequence if stored else job.last,
        expected_last_hash=head.hash if stored else None,
        final=job.final,
    )


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
