from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.incident import IncidentState
from ssbg.infrastructure.db.models import SystemState

_STATE = SystemState.__table__.c
_INCIDENT_STATE = select(
    _STATE.incident_level, _STATE.incident_changed_at, _STATE.last_alert_at
).where(_STATE.id == 1)


class SystemStateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, *, for_update: bool = False) -> SystemState:
        statement = select(SystemState).where(SystemState.id == 1)
        if for_update:
            statement = statement.with_for_update()
        result = await self._session.execute(statement)
        return result.scalar_one()

    async def incident_state(self) -> IncidentState:
        """The incident columns as this statement sees them: a fresh column read, never an
        object the session loaded earlier in the transaction (which could be stale). A change
        this transaction made and has not flushed yet is flushed first, so it counts."""
        await self._session.flush()
        connection = await self._session.connection()
        row = (await connection.execute(_INCIDENT_STATE)).one()
        return IncidentState(row.incident_level, row.incident_changed_at, row.last_alert_at)
