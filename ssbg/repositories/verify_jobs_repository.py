"""Named queries for verify jobs (``POST /admin/verify``).

A replica works on a job while it holds the job's lease. The lease's expiry doubles as the
holder's fencing token: every write of a holder names the expiry it was given
(``lease_expires_at = :held``), so a replica whose lease lapsed and was taken over by another
writes nothing more — its progress, renewal and completion all find another token there.
"""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.queries import BackupCursor
from ssbg.domain.verification import VerifyJobStatus
from ssbg.infrastructure.db.models import VerifyJob


class VerifyJobsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, job: VerifyJob) -> None:
        self._session.add(job)
        await self._session.flush()

    async def get_or_none(self, job_id: UUID) -> VerifyJob | None:
        result = await self._session.execute(
            select(VerifyJob)
            .where(VerifyJob.id == job_id)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def running_or_none(self) -> VerifyJob | None:
        result = await self._session.execute(
            select(VerifyJob)
            .where(VerifyJob.status == VerifyJobStatus.RUNNING)
            .order_by(VerifyJob.created_at)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def list_claimable(self, now: datetime, limit: int) -> Sequence[UUID]:
        """Running jobs nobody holds: never claimed, or whose lease lapsed (or pause ended)."""
        result = await self._session.execute(
            select(VerifyJob.id)
            .where(
                VerifyJob.status == VerifyJobStatus.RUNNING,
                or_(VerifyJob.lease_expires_at.is_(None), VerifyJob.lease_expires_at < now),
            )
            .order_by(VerifyJob.created_at)
            .limit(limit)
        )
        return result.scalars().all()

    async def claim(self, job_id: UUID, now: datetime, until: datetime) -> bool:
        """Take a running job whose lease is free or lapsed (compare-and-set)."""
        result = await self._session.execute(
            update(VerifyJob)
            .where(
                VerifyJob.id == job_id,
                VerifyJob.status == VerifyJobStatus.RUNNING,
                or_(VerifyJob.lease_expires_at.is_(None), VerifyJob.lease_expires_at < now),
            )
            .values(lease_expires_at=until, updated_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def renew(self, job_id: UUID, held: datetime, until: datetime) -> bool:
        """Extend the lease ``held``; False if it is no longer this holder's."""
        return await self._fenced(job_id, held, lease_expires_at=until)

    async def advance(
        self,
        job_id: UUID,
        held: datetime,
        cursor: BackupCursor,
        now: datetime,
        *,
        verified: int = 0,
        failed: int = 0,
    ) -> bool:
        """Record the last backup done (and count it); False if the lease is not ``held``."""
        return await self._fenced(
            job_id,
            held,
            cursor_created_at=cursor.created_at,
            cursor_id=cursor.backup_id,
            verified=VerifyJob.verified + verified,
            failed=VerifyJob.failed + failed,
            updated_at=now,
        )

    async def complete(self, job_id: UUID, held: datetime, now: datetime) -> VerifyJob | None:
        """Mark the job ``COMPLETED``; ``None`` if the lease is not ``held``."""
        if not await self._fenced(
            job_id,
            held,
            status=VerifyJobStatus.COMPLETED,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        ):
            return None
        return await self.get_or_none(job_id)

    async def _fenced(self, job_id: UUID, held: datetime, **values: object) -> bool:
        result = await self._session.execute(
            update(VerifyJob)
            .where(
                VerifyJob.id == job_id,
                VerifyJob.status == VerifyJobStatus.RUNNING,
                VerifyJob.lease_expires_at == held,
            )
            .values(**values)
        )
        return bool(getattr(result, "rowcount", 0) == 1)
