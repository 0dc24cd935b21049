from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.queries import RestoreCursor
from ssbg.domain.restore_lifecycle import COUNTED_STATUSES, RestoreStatus
from ssbg.infrastructure.db.models import RestoreRequest
from ssbg.repositories import leases
from ssbg.repositories.day_counts import counts_of, per_day_columns, within


@dataclass(frozen=True, slots=True)
class RestoreCount:
    """Restores in a window, and when the oldest of them leaves it."""

    count: int
    oldest: datetime | None


class RestoresRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, restore: RestoreRequest) -> None:
        self._session.add(restore)
        await self._session.flush()

    async def get_or_none(self, restore_id: UUID) -> RestoreRequest | None:
        return await self._session.get(RestoreRequest, restore_id)

    async def get_for_update_or_none(self, restore_id: UUID) -> RestoreRequest | None:
        result = await self._session.execute(
            select(RestoreRequest).where(RestoreRequest.id == restore_id).with_for_update()
        )
        return result.scalar_one_or_none()

    async def list_newest(
        self, status: RestoreStatus | None, after: RestoreCursor | None, limit: int
    ) -> Sequence[RestoreRequest]:
        """Requests newest first (each row's seal is checked as it loads)."""
        statement = select(RestoreRequest)
        if status is not None:
            statement = statement.where(RestoreRequest.status == status)
        if after is not None:
            statement = statement.where(
                or_(
                    RestoreRequest.created_at < after.created_at,
                    and_(
                        RestoreRequest.created_at == after.created_at,
                        RestoreRequest.id < after.restore_id,
                    ),
                )
            )
        statement = statement.order_by(
            RestoreRequest.created_at.desc(), RestoreRequest.id.desc()
        ).limit(limit)
        return (await self._session.execute(statement)).scalars().all()

    async def count_since(
        self, since: datetime, *, requested_by: UUID | None = None, exclude: UUID | None = None
    ) -> RestoreCount:
        """Requests that used up a restore (see ``COUNTED_STATUSES``) created after ``since``.

        The rows are loaded, not counted in SQL, so each one's seal is checked: a status or
        time changed behind the gateway cannot lower the count a rate limit is decided on.
        """
        statement = select(RestoreRequest).where(RestoreRequest.created_at > since)
        if requested_by is not None:
            statement = statement.where(RestoreRequest.requested_by == requested_by)
        if exclude is not None:
            statement = statement.where(RestoreRequest.id != exclude)
        counted = [
            restore.created_at
            for restore in (await self._session.execute(statement)).scalars()
            if restore.status in COUNTED_STATUSES
        ]
        return RestoreCount(count=len(counted), oldest=min(counted, default=None))

    async def count_per_day(self, day_starts: Sequence[datetime]) -> list[int]:
        """Restore requests made on each day starting at ``day_starts`` (for display)."""
        column = RestoreRequest.created_at
        result = await self._session.execute(
            select(*per_day_columns(column, day_starts)).where(within(column, day_starts))
        )
        return counts_of(result.one_or_none(), len(day_starts))

    async def change_status(
        self,
        restore_id: UUID,
        current: RestoreStatus,
        *,
        lease_lapsed_before: datetime | None = None,
        **values: Any,
    ) -> RestoreRequest | None:
        """Set ``values`` if the request is still ``current`` (and, with
        ``lease_lapsed_before``, its lease lapsed before then): the row is locked and read
        (its seal checked), changed and flushed (sealed again); ``None`` when another writer
        moved it first."""
        result = await self._session.execute(
            select(RestoreRequest)
            .where(RestoreRequest.id == restore_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        restore = result.scalar_one_or_none()
        if restore is None or restore.status is not current:
            return None
        if lease_lapsed_before is not None and not (
            restore.lease_expires_at is not None and restore.lease_expires_at < lease_lapsed_before
        ):
            return None
        for name, value in values.items():
            setattr(restore, name, value)
        await self._session.flush()
        return restore

    async def count_download(self, restore_id: UUID) -> None:
        """One more download of a ``COMPLETED`` request (not a status change)."""
        await self._session.execute(
            update(RestoreRequest)
            .where(
                RestoreRequest.id == restore_id,
                RestoreRequest.status == RestoreStatus.COMPLETED,
            )
            .values(downloads=RestoreRequest.downloads + 1)
        )

    async def renew_lease(self, restore_id: UUID, until: datetime, now: datetime) -> None:
        await self._session.execute(
            update(RestoreRequest)
            .where(
                RestoreRequest.id == restore_id,
                RestoreRequest.status == RestoreStatus.VERIFYING,
            )
            .values(lease_expires_at=until, updated_at=now)
        )

    async def list_renewed_after(
        self, after: datetime, limit: int
    ) -> Sequence[tuple[UUID, datetime, datetime]]:
        """``(id, renewed at, lease end)`` of VERIFYING requests whose lease was renewed after
        ``after`` — by a clock ahead of ours (``ssbg.domain.leases``)."""
        return await leases.list_renewed_after(
            self._session, RestoreRequest, RestoreStatus.VERIFYING, after, limit
        )

    async def restart_lease(
        self, restore_id: UUID, renewed_at: datetime, until: datetime, now: datetime
    ) -> bool:
        """Count a lease renewed at ``renewed_at`` again from ``now`` (to end at ``until``),
        unless it was renewed or moved meanwhile."""
        return await leases.restart_lease(
            self._session,
            RestoreRequest,
            RestoreStatus.VERIFYING,
            restore_id,
            renewed_at,
            until,
            now,
        )

    async def list_lapsed_verifying(self, now: datetime, limit: int) -> Sequence[UUID]:
        result = await self._session.execute(
            select(RestoreRequest.id)
            .where(
                RestoreRequest.status == RestoreStatus.VERIFYING,
                RestoreRequest.lease_expires_at < now,
            )
            .limit(limit)
        )
        return result.scalars().all()
