from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.infrastructure.db.models import IncidentLevelChange


class IncidentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add_change(self, change: IncidentLevelChange) -> None:
        self._session.add(change)

    async def recent_changes(self, limit: int) -> Sequence[IncidentLevelChange]:
        result = await self._session.execute(
            select(IncidentLevelChange)
            .order_by(IncidentLevelChange.changed_at.desc(), IncidentLevelChange.id)
            .limit(limit)
        )
        return result.scalars().all()
