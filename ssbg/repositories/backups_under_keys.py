"""Queries on the backups under one key version: what a rotation's rewrap, a crypto-shred and
its certificate need (part of the backups repository, :class:`BackupsRepository`)."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.enums import BackupStatus
from ssbg.infrastructure.db.models import BackupMetadata, BackupStatusTransition


class BackupsUnderKeys:
    _session: AsyncSession

    async def protection_by_key_version(
        self, version: str | None = None
    ) -> dict[str, tuple[int, int]]:
        """Per key version (or for ``version`` only): how many backups its key protects, and
        their plaintext bytes (every status but ``CRYPTO_SHREDDED``)."""
        query = select(
            BackupMetadata.key_version,
            func.count(),
            func.coalesce(func.sum(BackupMetadata.original_size), 0),
        ).where(BackupMetadata.status != BackupStatus.CRYPTO_SHREDDED)
        if version is not None:
            query = query.where(BackupMetadata.key_version == version)
        result = await self._session.execute(query.group_by(BackupMetadata.key_version))
        return {version: (int(count), int(size or 0)) for version, count, size in result.all()}

    async def list_ids_under_key(
        self, key_version: str, statuses: Sequence[BackupStatus], limit: int
    ) -> Sequence[UUID]:
        result = await self._session.execute(
            select(BackupMetadata.id)
            .where(
                BackupMetadata.key_version == key_version,
                BackupMetadata.status.in_(statuses),
            )
            .order_by(BackupMetadata.id)
            .limit(limit)
        )
        return result.scalars().all()

    async def lock_many(self, backup_ids: Sequence[UUID]) -> Sequence[BackupMetadata]:
        """The backups, locked and read (their seals checked), in id order."""
        result = await self._session.execute(
            select(BackupMetadata)
            .where(BackupMetadata.id.in_(backup_ids))
            .order_by(BackupMetadata.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalars().all()

    async def next_transition_sequences(self, backup_ids: Sequence[UUID]) -> dict[UUID, int]:
        result = await self._session.execute(
            select(BackupStatusTransition.backup_id, func.max(BackupStatusTransition.sequence))
            .where(BackupStatusTransition.backup_id.in_(backup_ids))
            .group_by(BackupStatusTransition.backup_id)
        )
        last: dict[UUID, int] = {backup_id: int(top or 0) for backup_id, top in result.all()}
        return {backup_id: last.get(backup_id, 0) + 1 for backup_id in backup_ids}

    async def switch_wrapped_dek(
        self,
        backup_id: UUID,
        from_version: str,
        old_ref: str,
        to_version: str,
        new_ref: str,
        now: datetime,
    ) -> bool:
        """Point a backup at its rewrapped DEK, if it still names ``from_version`` and
        ``old_ref`` (compare-and-set under the row lock; the row is sealed again)."""
        result = await self._session.execute(
            select(BackupMetadata)
            .where(BackupMetadata.id == backup_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        backup = result.scalar_one_or_none()
        if backup is None or (backup.key_version, backup.wrapped_dek_ref) != (
            from_version,
            old_ref,
        ):
            return False
        backup.key_version, backup.wrapped_dek_ref, backup.updated_at = to_version, new_ref, now
        await self._session.flush()
        return True

    async def checksums_under_key(
        self, key_version: str, status: BackupStatus
    ) -> Sequence[tuple[UUID, str | None]]:
        """``(backup_id, checksum_ciphertext)`` of every backup under ``key_version`` in
        ``status``, by id (what a destruction certificate lists). The rows are loaded, so each
        one's seal is checked: the gateway signs nothing a database writer could have made."""
        result = await self._session.execute(
            select(BackupMetadata)
            .where(BackupMetadata.key_version == key_version, BackupMetadata.status == status)
            .order_by(BackupMetadata.id)
        )
        return [(backup.id, backup.checksum_ciphertext) for backup in result.scalars()]

    async def held_under_key(
        self, key_version: str, limit: int, *, batch: int = 1_000
    ) -> tuple[Sequence[UUID], int]:
        """Up to ``limit`` ids (by id) of the backups under a legal hold whose DEK
        ``key_version`` wraps, and how many there are in all.

        Every backup under the version is loaded, a batch at a time, so each one's seal is
        checked: a hold removed in the database behind the gateway raises ``TamperedRow``
        here, before a crypto-shred could destroy what it held. Each batch leaves the
        session once checked (memory stays bounded; the caller holds none of these rows).
        """
        held: list[UUID] = []
        count = 0
        after: UUID | None = None
        while True:
            statement = select(BackupMetadata).where(
                BackupMetadata.key_version == key_version,
                BackupMetadata.status != BackupStatus.CRYPTO_SHREDDED,
            )
            if after is not None:
                statement = statement.where(BackupMetadata.id > after)
            result = await self._session.execute(statement.order_by(BackupMetadata.id).limit(batch))
            rows = result.scalars().all()
            if not rows:
                return held, count
            for row in rows:
                if row.held:
                    count += 1
                    if len(held) < limit:
                        held.append(row.id)
                self._session.expunge(row)
            after = rows[-1].id
