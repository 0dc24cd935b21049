from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.infrastructure.db.models import RetentionRule


class RetentionRulesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, rule: RetentionRule) -> None:
        self._session.add(rule)

    async def flush(self) -> None:
        await self._session.flush()

    async def get_or_none(self, rule_id: UUID) -> RetentionRule | None:
        return await self._session.get(RetentionRule, rule_id)

    async def get_by_name_or_none(self, name: str) -> RetentionRule | None:
        result = await self._session.execute(
            select(RetentionRule).where(RetentionRule.name == name)
        )
        return result.scalar_one_or_none()

    async def list_rules(self, *, active_only: bool = False) -> Sequence[RetentionRule]:
        """Every rule by name (``active_only``: the active ones).

        Filtered here, not in SQL: every rule is loaded, so its seal is checked — a rule
        switched off or on behind the gateway fails the run instead of changing it.
        """
        result = await self._session.execute(select(RetentionRule).order_by(RetentionRule.name))
        rules = result.scalars().all()
        return [rule for rule in rules if rule.is_active] if active_only else rules
