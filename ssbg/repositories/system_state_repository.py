from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.infrastructure.db.models import SystemState


class SystemStateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, *, for_update: bool = False) -> SystemState:
        statement = select(SystemState).where(SystemState.id == 1)
        if for_update:
            statement = statement.with_for_update()
        result = await self._session.execute(statement)
        return result.scalar_one()
