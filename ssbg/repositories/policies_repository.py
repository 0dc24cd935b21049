from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.infrastructure.db.models import Policy


class PoliciesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, policy: Policy) -> None:
        self._session.add(policy)

    async def flush(self) -> None:
        await self._session.flush()

    async def get_or_none(self, policy_id: UUID) -> Policy | None:
        return await self._session.get(Policy, policy_id)

    async def get_by_name_or_none(self, name: str) -> Policy | None:
        result = await self._session.execute(select(Policy).where(Policy.name == name))
        return result.scalar_one_or_none()

    async def list_policies(self, *, active_only: bool = False) -> Sequence[Policy]:
        statement = select(Policy).order_by(Policy.priority, Policy.name)
        if active_only:
            statement = statement.where(Policy.is_active.is_(True))
        result = await self._session.execute(statement)
        return result.scalars().all()
