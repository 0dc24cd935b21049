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
