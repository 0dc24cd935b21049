from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.enums import KeyVersionStatus
from ssbg.infrastructure.db.models import KeyVersion


class KeyVersionsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, key_version: KeyVersion) -> None:
        self._session.add(key_version)

    async def get_or_none(self, version: str) -> KeyVersion | None:
        return await self._session.get(KeyVersion, version)

    async def get_active_or_none(self) -> KeyVersion | None:
        result = await self._session.execute(
            select(KeyVersion).where(KeyVersion.status == KeyVersionStatus.ACTIVE)
        )
        return result.scalar_one_or_none()

    async def get_for_update_or_none(self, version: str) -> KeyVersion | None:
        result = await self._session.execute(
            select(KeyVersion)
            .where(KeyVersion.version == version)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def lock_shared_or_none(self, version: str) -> KeyVersion | None:
        """The version, share-locked until the transaction ends (``FOR SHARE`` on PostgreSQL;
        SQLite serialises every writer anyway): a crypto-shred, which locks it for update,
        waits for this transaction, and this one for a shred that locked it first."""
        result = await self._session.execute(
            select(KeyVersion)
            .where(KeyVersion.version == version)
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def list_versions(self) -> Sequence[KeyVersion]:
        result = await self._session.execute(select(KeyVersion).order_by(KeyVersion.version))
        return result.scalars().all()

    async def list_shreds_in_progress(self) -> Sequence[KeyVersion]:
        """Versions whose crypto-shred began and has no certificate yet (interrupted)."""
        result = await self._session.execute(
            select(KeyVersion)
            .where(
                KeyVersion.shred_started_at.is_not(None),
                KeyVersion.destruction_certificate.is_(None),
            )
            .order_by(KeyVersion.version)
        )
        return result.scalars().all()

    async def destruction_certificates(self) -> list[dict[str, Any]]:
        """Every destroyed version's certificate, in version order."""
        result = await self._session.execute(
            select(KeyVersion.destruction_certificate)
            .where(KeyVersion.destruction_certificate.is_not(None))
            .order_by(KeyVersion.version)
        )
        return [certificate for certificate in result.scalars() if certificate is not None]
