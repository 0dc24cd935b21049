from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.enums import Role
from ssbg.infrastructure.db.models import ApiKey


class ApiKeysRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, api_key: ApiKey) -> None:
        self._session.add(api_key)

    async def get_or_none(self, key_id: UUID) -> ApiKey | None:
        return await self._session.get(ApiKey, key_id)

    async def get_by_hash_or_none(self, key_hash: str) -> ApiKey | None:
        result = await self._session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash))
        return result.scalar_one_or_none()

    async def list_keys(self) -> Sequence[ApiKey]:
        result = await self._session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
        return result.scalars().all()

    async def count_usable_with_role(self, role: Role, now: datetime) -> int:
        result = await self._session.execute(
            select(func.count())
            .select_from(ApiKey)
            .where(
                ApiKey.role == role,
                ApiKey.revoked_at.is_(None),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
            )
        )
        return int(result.scalar_one())

    async def record_use(
        self, key_id: UUID, at: datetime, ip: str | None, stale_before: datetime
    ) -> None:
        """Set ``last_used_*`` unless a request on any replica did so since ``stale_before``."""
        await self._session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale_before),
            )
            .values(last_used_at=at, last_used_ip=ip)
        )

    async def claim_totp_step(self, key_id: UUID, step: int) -> bool:
        """Atomically record ``step`` as used; False if it (or a later one) was used already."""
        result = await self._session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.totp_last_step.is_(None), ApiKey.totp_last_step < step),
            )
            .values(totp_last_step=step)
        )
        return bool(getattr(result, "rowcount", 0) == 1)
