"""Named queries for backups and their lifecycle transitions.

Visibility (an operator sees only the backups it created) lives in one statement builder,
:meth:`BackupsRepository._visible`, which every read on behalf of a caller goes through.
Status changes are compare-and-set updates (``WHERE status = :expected``), so two replicas
racing to move the same backup never both succeed.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.enums import BackupStatus, Classification
from ssbg.domain.errors import Conflict
from ssbg.domain.queries import BackupCursor, BackupFilters, BackupViewer
from ssbg.domain.retention import RetentionCandidate
from ssbg.domain.verification import VerifySelection
from ssbg.infrastructure.db.models import BackupMetadata, BackupStatusTransition
from ssbg.repositories import leases
from ssbg.repositories.backups_under_keys import BackupsUnderKeys
from ssbg.repositories.day_counts import counts_of, per_day_columns, within


@dataclass(frozen=True, slots=True)
class BackupTally:
    status: BackupStatus
    classification: Classification
    count: int
    encrypted_bytes: int


class BackupsRepository(BackupsUnderKeys):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert(self, backup: BackupMetadata, first: BackupStatusTransition) -> None:
        """Insert a new backup and its first transition; ``Conflict`` if the API key already
        used the backup's ``idempotency_key`` (the transaction must then be rolled back)."""
        self._session.add(backup)
        try:
            await self._session.flush()
        except IntegrityError:
            raise Conflict("This Idempotency-Key was already used by this API key.") from None
        self._session.add(first)
        await self._session.flush()

    def add_transition(self, transition: BackupStatusTransition) -> None:
        self._session.add(transition)

    async def flush(self) -> None:
        await self._session.flush()

    # -- reads on behalf of a caller ------------------------------------------------------

    @staticmethod
    def _visible_to(viewer: BackupViewer) -> list[ColumnElement[bool]]:
        """The one visibility rule, as the conditions every read on a caller's behalf adds."""
        return [] if viewer.sees_all else [BackupMetadata.created_by == viewer.key_id]

    @classmethod
    def _visible(cls, viewer: BackupViewer) -> Select[BackupMetadata]:
        return select(BackupMetadata).where(*cls._visible_to(viewer))

    async def summary_visible(self, viewer: BackupViewer) -> Sequence[BackupTally]:
        """How many backups ``viewer`` sees, and their ciphertext bytes, per status and
        classification (an aggregate: for display, not for a decision)."""
        result = await self._session.execute(
            select(
                BackupMetadata.status,
                BackupMetadata.classification,
                func.count(),
                func.coalesce(func.sum(BackupMetadata.encrypted_size), 0),
            )
            .where(*self._visible_to(viewer))
            .group_by(BackupMetadata.status, BackupMetadata.classification)
        )
        return [
            BackupTally(BackupStatus(status), Classification(classification), count, int(size or 0))
            for status, classification, count, size in result.all()
        ]

    async def count_visible_per_day(
        self, viewer: BackupViewer, day_starts: Sequence[datetime]
    ) -> list[int]:
        """Backups ``viewer`` sees created on each day starting at ``day_starts``."""
        column = BackupMetadata.created_at
        result = await self._session.execute(
            select(*per_day_columns(column, day_starts)).where(
                within(column, day_starts), *self._visible_to(viewer)
            )
        )
        return counts_of(result.one_or_none(), len(day_starts))

    async def get_visible_or_none(
        self, viewer: BackupViewer, backup_id: UUID
    ) -> BackupMetadata | None:
        result = await self._session.execute(
            self._visible(viewer).where(BackupMetadata.id == backup_id)
        )
        return result.scalar_one_or_none()

    async def list_visible(
        self,
        viewer: BackupViewer,
        filters: BackupFilters,
        after: BackupCursor | None,
        limit: int,
    ) -> Sequence[BackupMetadata]:
        statement = self._visible(viewer)
        if filters.classification is not None:
            statement = statement.where(BackupMetadata.classification == filters.classification)
        if filters.source_system is not None:
            statement = statement.where(BackupMetadata.source_system == filters.source_system)
        if filters.status is not None:
            statement = statement.where(BackupMetadata.status == filters.status)
        if filters.created_from is not None:
            statement = statement.where(BackupMetadata.created_at >= filters.created_from)
        if filters.created_to is not None:
            statement = statement.where(BackupMetadata.created_at < filters.created_to)
        if after is not None:
            statement = statement.where(
                or_(
                    BackupMetadata.created_at < after.created_at,
                    and_(
                        BackupMetadata.created_at == after.created_at,
                        BackupMetadata.id < after.backup_id,
                    ),
                )
            )
        statement = statement.order_by(
            BackupMetadata.created_at.desc(), BackupMetadata.id.desc()
        ).limit(limit)
        result = await self._session.execute(statement)
        return result.scalars().all()

    async def list_transitions(self, backup_id: UUID) -> Sequence[BackupStatusTransition]:
        result = await self._session.execute(
            select(BackupStatusTransition)
            .where(BackupStatusTransition.backup_id == backup_id)
            .order_by(BackupStatusTransition.sequence)
        )
        return result.scalars().all()

    # -- reads and writes of the services -------------------------------------------------

    async def get_or_none(self, backup_id: UUID) -> BackupMetadata | None:
        return await self._session.get(BackupMetadata, backup_id)

    async def get_by_idempotency_key_or_none(
        self, created_by: UUID, idempotency_key: str
    ) -> BackupMetadata | None:
        result = await self._session.execute(
            select(BackupMetadata).where(
                BackupMetadata.created_by == created_by,
                BackupMetadata.idempotency_key == idempotency_key,
            )
        )
        return result.scalar_one_or_none()

    async def next_transition_sequence(self, backup_id: UUID) -> int:
        result = await self._session.execute(
            select(func.coalesce(func.max(BackupStatusTransition.sequence), 0)).where(
                BackupStatusTransition.backup_id == backup_id
            )
        )
        return int(result.scalar_one()) + 1

    async def change_status(
        self,
        backup_id: UUID,
        expected: BackupStatus,
        *,
        lease_lapsed_before: datetime | None = None,
        **values: Any,
    ) -> BackupMetadata | None:
        """Set ``values`` (``status`` among them) if the backup is still ``expected`` — and,
        with ``lease_lapsed_before``, only if its lease lapsed by then (recovery).

        The row is locked and read (its seal checked), changed, and flushed (sealed again):
        returns it, or ``None`` if another writer moved it first.
        """
        result = await self._session.execute(
            select(BackupMetadata)
            .where(BackupMetadata.id == backup_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        backup = result.scalar_one_or_none()
        if backup is None or backup.status is not expected:
            return None
        lease = backup.lease_expires_at
        if lease_lapsed_before is not None and lease is not None and lease >= lease_lapsed_before:
            return None
        for name, value in values.items():
            setattr(backup, name, value)
        await self._session.flush()
        return backup

    async def lock_or_none(self, backup_id: UUID) -> BackupMetadata | None:
        """The backup, locked until the transaction ends and read again (its seal checked)."""
        result = await self._session.execute(
            select(BackupMetadata)
            .where(BackupMetadata.id == backup_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def record_verification(
        self, backup: BackupMetadata, *, verified_at: datetime, result: str, now: datetime
    ) -> None:
        """Set a locked backup's last verification (sealed again on flush)."""
        backup.last_verified_at = verified_at
        backup.last_verification_result = result
        backup.updated_at = now
        await self._session.flush()

    async def last_quarantined_at(self, backup_id: UUID) -> datetime | None:
        """When the backup last moved to ``QUARANTINED`` (``None`` if it never did)."""
        result = await self._session.execute(
            select(func.max(BackupStatusTransition.at)).where(
                BackupStatusTransition.backup_id == backup_id,
                BackupStatusTransition.to_status == BackupStatus.QUARANTINED,
            )
        )
        moment: datetime | None = result.scalar_one_or_none()
        return moment

    @staticmethod
    def _selected(selection: VerifySelection, completed_by: datetime) -> list[Any]:
        conditions: list[Any] = [
            BackupMetadata.status.in_(selection.statuses),
            BackupMetadata.completed_at <= completed_by,
        ]
        if selection.classification is not None:
            conditions.append(BackupMetadata.classification == selection.classification)
        if selection.created_from is not None:
            conditions.append(BackupMetadata.created_at >= selection.created_from)
        if selection.created_to is not None:
            conditions.append(BackupMetadata.created_at < selection.created_to)
        return conditions

    async def count_selected_by_source(
        self, selection: VerifySelection, completed_by: datetime
    ) -> dict[str, int]:
        """How many backups of each source system a verify selection holds (the glob on the
        source system is the caller's: SQL LIKE differs between the databases)."""
        result = await self._session.execute(
            select(BackupMetadata.source_system, func.count())
            .where(*self._selected(selection, completed_by))
            .group_by(BackupMetadata.source_system)
        )
        return {source: int(count) for source, count in result.all()}

    async def list_selected_after(
        self,
        selection: VerifySelection,
        completed_by: datetime,
        after: BackupCursor | None,
        limit: int,
    ) -> Sequence[tuple[datetime, UUID, str]]:
        """``(created_at, id, source_system)`` of the next backups of a verify selection, in
        ``(created_at, id)`` order after ``after``. Columns, not rows: a row whose seal is
        broken is met (and refused) when it is verified, without stopping the listing."""
        statement = select(
            BackupMetadata.created_at, BackupMetadata.id, BackupMetadata.source_system
        ).where(*self._selected(selection, completed_by))
        if after is not None:
            statement = statement.where(
                or_(
                    BackupMetadata.created_at > after.created_at,
                    and_(
                        BackupMetadata.created_at == after.created_at,
                        BackupMetadata.id > after.backup_id,
                    ),
                )
            )
        result = await self._session.execute(
            statement.order_by(BackupMetadata.created_at, BackupMetadata.id).limit(limit)
        )
        return [(created_at, backup_id, source) for created_at, backup_id, source in result.all()]

    async def renew_lease(self, backup_id: UUID, until: datetime, now: datetime) -> bool:
        """Extend the lease of a backup this process is still streaming; False if it was
        failed meanwhile (by recovery on another replica, after the lease had lapsed)."""
        result = await self._session.execute(
            update(BackupMetadata)
            .where(
                BackupMetadata.id == backup_id,
                BackupMetadata.status == BackupStatus.PROCESSING,
            )
            .values(lease_expires_at=until, updated_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def list_renewed_after(
        self, after: datetime, limit: int
    ) -> Sequence[tuple[UUID, datetime, datetime]]:
        """``(id, renewed at, lease end)`` of PROCESSING backups whose lease was renewed after
        ``after`` — by a clock ahead of ours (``ssbg.domain.leases``)."""
        return await leases.list_renewed_after(
            self._session, BackupMetadata, BackupStatus.PROCESSING, after, limit
        )

    async def restart_lease(
        self, backup_id: UUID, renewed_at: datetime, until: datetime, now: datetime
    ) -> bool:
        """Count a lease renewed at ``renewed_at`` again from ``now`` (to end at ``until``),
        unless it was renewed or moved meanwhile."""
        return await leases.restart_lease(
            self._session,
            BackupMetadata,
            BackupStatus.PROCESSING,
            backup_id,
            renewed_at,
            until,
            now,
        )

    async def list_lapsed_processing(self, now: datetime, limit: int) -> Sequence[UUID]:
        result = await self._session.execute(
            select(BackupMetadata.id)
            .where(
                BackupMetadata.status == BackupStatus.PROCESSING,
                or_(
                    BackupMetadata.lease_expires_at.is_(None),
                    BackupMetadata.lease_expires_at < now,
                ),
            )
            .order_by(BackupMetadata.created_at)
            .limit(limit)
        )
        return result.scalars().all()

    async def list_cleanup_pending(self, limit: int) -> Sequence[BackupMetadata]:
        result = await self._session.execute(
            select(BackupMetadata)
            .where(
                BackupMetadata.cleanup_pending.is_(True),
                BackupMetadata.status.in_([BackupStatus.FAILED, BackupStatus.DELETED]),
            )
            .order_by(BackupMetadata.updated_at)
            .limit(limit)
        )
        return result.scalars().all()

    async def mark_cleaned(self, backup_id: UUID) -> None:
        await self._session.execute(
            update(BackupMetadata)
            .where(BackupMetadata.id == backup_id)
            .values(cleanup_pending=False)
        )

    # -- legal holds and retention ----------------------------------------------------------

    async def get_for_update_or_none(self, backup_id: UUID) -> BackupMetadata | None:
        """The backup, locked until the transaction ends and read again (its seal checked)."""
        result = await self._session.execute(
            select(BackupMetadata)
            .where(BackupMetadata.id == backup_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def count_with_status(self, status: BackupStatus) -> int:
        result = await self._session.execute(
            select(func.count()).where(BackupMetadata.status == status)
        )
        return int(result.scalar_one())

    async def source_systems_with_status(self, status: BackupStatus) -> Sequence[str]:
        result = await self._session.execute(
            select(BackupMetadata.source_system)
            .where(BackupMetadata.status == status)
            .distinct()
            .order_by(BackupMetadata.source_system)
        )
        return result.scalars().all()

    async def retention_candidates(
        self, source_system: str, status: BackupStatus
    ) -> list[RetentionCandidate]:
        """The backups of one source system in ``status``, as the few fields retention plans
        with (no whole rows: a source system may have many backups). A deletion reads each
        row again, locked and seal-checked, before it acts."""
        result = await self._session.execute(
            select(
                BackupMetadata.id,
                BackupMetadata.source_system,
                BackupMetadata.classification,
                BackupMetadata.created_at,
                BackupMetadata.legal_hold_at,
            ).where(BackupMetadata.source_system == source_system, BackupMetadata.status == status)
        )
        return [
            RetentionCandidate(
                backup_id, source, classification.value, created_at, held is not None
            )
            for backup_id, source, classification, created_at, held in result.all()
        ]
