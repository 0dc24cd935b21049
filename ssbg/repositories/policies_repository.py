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
        """Every record in evaluation order (``active_only``: the active ones).

        Filtered here, not in SQL: every record is loaded, so its seal is checked — a record
        switched off behind the gateway must fail the decision, not drop out of it.
        """
        result = await self._session.execute(select(Policy).order_by(Policy.priority, Policy.name))
        policies = result.scalars().all()
        return [policy for policy in policies if policy.is_active] if active_only else policies
