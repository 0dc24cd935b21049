"""Verify jobs (SPEC §13.4): ``POST /admin/verify`` verifies a selection of backups, resumably.

A job covers the backups of its selection completed by the time it was started, taken in
``(created_at, id)`` order. Each backup is verified exactly as ``POST /backups/{id}/verify``
does it (:mod:`.scrub`), by the gateway itself (actor ``system``, ``details.job_id``); the
job's cursor and counts advance in the same transaction that records the backup's finding.

Whoever works on a job holds its lease (``lease_expires_at``; see
:mod:`ssbg.repositories.verify_jobs_repository` for the fencing). The holder renews it while
it works; every replica's sweep, at start-up and then once per lease period, claims running
jobs whose lease lapsed (their replica died) or was given up (a dependency failed), and
carries on from the cursor. The replica that started a job is woken at once. A job stopped
by a failing dependency (the store, the key store) keeps its lease for ``PAUSE_LEASES``
periods, then any replica resumes it.

``total`` is the size of the selection when the job started; ``verified`` counts the backups
verified (``VALID`` or ``INVALID``), ``failed`` those found ``INVALID`` (or whose metadata row
failed its seal). A backup deleted or shredded before the job reached it is skipped, so a
finished job may have ``verified < total``. At most one job runs at a time.
"""

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import structlog

from ssbg.domain.audit_events import AuditEvent
from ssbg.domain.enums import AuditAction
from ssbg.domain.errors import (
    BackupNotFound,
    Conflict,
    CryptoShredded,
    InvalidStateTransition,
    NotFound,
    SsbgError,
    TamperedRow,
)
from ssbg.domain.identity import SYSTEM_CONTEXT, Actor
from ssbg.domain.queries import BackupCursor
from ssbg.domain.verification import VERIFY_JOB_RUNNING, VerifyJobStatus, VerifySelection
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import VerifyJob
from ssbg.services.audit_service import AuditTrail
from ssbg.services.integrity_service import IntegrityService
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork
from ssbg.services.verification.scrub import BackupScrub

log = structlog.get_logger("ssbg.verification")

BATCH = 20
SWEEP_LIMIT = 10
# A job stopped by a failing dependency is resumed after this many lease periods (each attempt
# records one BACKUP_VERIFY ERROR: no entry a minute for as long as the store is down).
PAUSE_LEASES = 5


def verify_job_resource(job_id: UUID) -> str:
    return f"verify_job:{job_id}"


class LeaseLost(Exception):
    """Another replica took the job over (this one's lease lapsed): stop, write nothing."""


@dataclass
class JobLease:
    """A held lease: ``held`` is the expiry this holder was given, its fencing token. ``lock``
    is taken before any transaction that uses or changes ``held``, never inside one."""

    job_id: UUID
    held: datetime
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class _Step:
    """One backup of a job: its progress, recorded with its finding (see ``scrub``)."""

    lease: JobLease
    position: BackupCursor
    clock: Clock

    @property
    def job_id(self) -> UUID:
        return self.lease.job_id

    def hold(self) -> asyncio.Lock:
        return self.lease.lock

    async def record(self, tx: UnitOfWork, *, valid: bool) -> None:
        advanced = await tx.verify_jobs.advance(
            self.lease.job_id,
            self.lease.held,
            self.position,
            self.clock.now(),
            verified=1,
            failed=0 if valid else 1,
        )
        if not advanced:
            raise LeaseLost()


class VerifyJobs:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        scrub: BackupScrub,
        integrity: IntegrityService,
        lease: timedelta,
    ) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock
        self._scrub = scrub
        self._integrity = integrity
        self._lease = lease
        self._woken = asyncio.Event()

    # -- the API's side ---------------------------------------------------------------------

    async def start(self, actor: Actor, selection: VerifySelection) -> VerifyJob:
        """A new ``RUNNING`` job over ``selection`` (``VERIFY_JOB_START``); ``409`` while
        another one runs. Nobody holds it yet: :meth:`wake` this process's runner."""
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            # The chain head's lock serialises job starts across replicas: the check below
            # and the insert cannot interleave with another start.
            await tx.lock_audit_head()
            running = await tx.verify_jobs.running_or_none()
            if running is not None:
                raise Conflict(
                    "A verify job is already running; follow it with GET /admin/verify/{job_id}.",
                    {"reason": VERIFY_JOB_RUNNING, "job_id": str(running.id)},
                )
            counts = await tx.backups.count_selected_by_source(selection, now)
            total = sum(n for source, n in counts.items() if selection.matches_source(source))
            job = VerifyJob(
                id=uuid4(),
                status=VerifyJobStatus.RUNNING.value,
                selection=selection.as_json(),
                total=total,
                verified=0,
                failed=0,
                cursor_created_at=None,
                cursor_id=None,
                created_by=actor.key_id,
                created_at=now,
                updated_at=now,
                finished_at=None,
                lease_expires_at=None,
            )
            await tx.verify_jobs.add(job)
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.VERIFY_JOB_START,
                    verify_job_resource(job.id),
                    selection=selection.as_json(),
                    total=total,
                ),
            )
        return job

    async def get(self, job_id: UUID) -> VerifyJob:
        async with self._db.transaction(write=False) as tx:
            job = await tx.verify_jobs.get_or_none(job_id)
        if job is None:
            raise NotFound("Verify job not found.")
        return job

    def wake(self) -> None:
        """Run promptly: a job was just started in this process."""
        self._woken.set()

    # -- the runner's side ------------------------------------------------------------------

    async def claim(self, job_id: UUID) -> JobLease | None:
        """Take a job nobody holds (never claimed, given up, or lapsed); ``None`` if taken."""
        now = self._clock.now()
        until = now + self._lease
        async with self._db.transaction(write=True) as tx:
            claimed = await tx.verify_jobs.claim(job_id, now, until)
        return JobLease(job_id, until) if claimed else None

    async def run_batch(self, lease: JobLease, limit: int = BATCH) -> bool:
        """Verify the next ``limit`` backups of the selection; True once the job is done.

        Raises ``LeaseLost`` if another replica took the job, and a dependency's error (the
        backup it was at is then left for the next attempt)."""
        async with self._db.transaction(write=False) as tx:
            job = await tx.verify_jobs.get_or_none(lease.job_id)
            if job is None or job.status != VerifyJobStatus.RUNNING:
                raise LeaseLost()
            selection = VerifySelection.from_json(job.selection)
            after = (
                BackupCursor(job.cursor_created_at, job.cursor_id)
                if job.cursor_created_at is not None and job.cursor_id is not None
                else None
            )
            rows = await tx.backups.list_selected_after(selection, job.created_at, after, limit)
        passed_over: BackupCursor | None = None
        for created_at, backup_id, source_system in rows:
            position = BackupCursor(created_at, backup_id)
            if not selection.matches_source(source_system):
                passed_over = position
                continue
            passed_over = None
            await self._verify_one(lease, backup_id, position)
        if passed_over is not None:
            await self._advance(lease, passed_over)
        if len(rows) < limit:
            await self._complete(lease)
            return True
        return False

    async def run(self, job_id: UUID) -> VerifyJob | None:
        """Claim the job and work on it until it is done; ``None`` if it could not be claimed
        or had to stop (taken over, or a dependency failed: it is then paused)."""
        lease = await self.claim(job_id)
        if lease is None:
            return None
        keeper = asyncio.create_task(self._keep(lease))
        try:
            while not await self.run_batch(lease):
                pass
        except LeaseLost:
            log.warning("verify_job_taken_over", job_id=str(job_id))
            return None
        except SsbgError as error:
            log.warning("verify_job_paused", job_id=str(job_id), code=error.code)
            await self._pause(lease)
            return None
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        return await self.get(job_id)

    async def sweep_once(self) -> list[UUID]:
        """Run every job nobody holds to completion; the ids of those finished. Logs instead
        of raising (a task of the app's lifespan)."""
        finished: list[UUID] = []
        try:
            async with self._db.transaction(write=False) as tx:
                claimable = await tx.verify_jobs.list_claimable(self._clock.now(), SWEEP_LIMIT)
            for job_id in claimable:
                if await self.run(job_id) is not None:
                    finished.append(job_id)
        except SsbgError as error:
            log.warning("verify_job_sweep_failed", code=error.code)
        except Exception as error:
            log.error("verify_job_sweep_failed", error=type(error).__name__)
        return finished

    async def run_periodically(self, interval_seconds: float) -> None:
        """Sweep at every wake-up and at least every ``interval_seconds``, forever."""
        while True:
            self._woken.clear()
            await self.sweep_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), interval_seconds)

    # -- steps ------------------------------------------------------------------------------

    async def _verify_one(self, lease: JobLease, backup_id: UUID, position: BackupCursor) -> None:
        step = _Step(lease, position, self._clock)
        try:
            await self._scrub.verify_backup(None, backup_id, step=step)
        except TamperedRow as tampered:
            # Its metadata was changed by someone without the key store: never acted on,
            # recorded, and counted as a failure.
            await self._integrity.record_tampering(tampered, SYSTEM_CONTEXT)
            await self._advance(lease, position, verified=1, failed=1)
        except (BackupNotFound, InvalidStateTransition, CryptoShredded):
            # Deleted or shredded since the job started: no longer in the selection.
            await self._advance(lease, position)

    async def _advance(
        self, lease: JobLease, position: BackupCursor, *, verified: int = 0, failed: int = 0
    ) -> None:
        async with lease.lock, self._db.transaction(write=True) as tx:
            advanced = await tx.verify_jobs.advance(
                lease.job_id,
                lease.held,
                position,
                self._clock.now(),
                verified=verified,
                failed=failed,
            )
        if not advanced:
            raise LeaseLost()

    async def _complete(self, lease: JobLease) -> None:
        async with lease.lock, self._db.transaction(write=True) as tx:
            job = await tx.verify_jobs.complete(lease.job_id, lease.held, self._clock.now())
            if job is None:
                raise LeaseLost()
            await self._trail.append(
                tx,
                AuditEvent.by(
                    None,
                    AuditAction.VERIFY_JOB_COMPLETE,
                    verify_job_resource(job.id),
                    total=job.total,
                    verified=job.verified,
                    failed=job.failed,
                ),
            )
        log.info(
            "verify_job_completed", job_id=str(job.id), verified=job.verified, failed=job.failed
        )

    async def _pause(self, lease: JobLease) -> None:
        """Keep the job for a while: any replica's sweep resumes it once this lease lapses."""
        until = self._clock.now() + self._lease * PAUSE_LEASES
        with contextlib.suppress(SsbgError):
            async with lease.lock, self._db.transaction(write=True) as tx:
                await tx.verify_jobs.renew(lease.job_id, lease.held, until)

    async def _keep(self, lease: JobLease) -> None:
        """Renew the lease every third of its length while the job runs."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            until = self._clock.now() + self._lease
            with contextlib.suppress(SsbgError):
                async with lease.lock:
                    async with self._db.transaction(write=True) as tx:
                        renewed = await tx.verify_jobs.renew(lease.job_id, lease.held, until)
                    if renewed:
                        lease.held = until
