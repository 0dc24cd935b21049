from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.infrastructure.db.models import ConsoleSession


class ConsoleSessionsRepository:
    """Console sessions by verifier. Every change loads the row and flushes it, so its seal
    is written (``ssbg.repositories.sealing``)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, console_session: ConsoleSession) -> None:
        self._session.add(console_session)
        await self._session.flush()

    async def get_or_none(self, session_id: str) -> ConsoleSession | None:
        return await self._session.get(ConsoleSession, session_id)

    async def get_for_update_or_none(self, session_id: str) -> ConsoleSession | None:
        result = await self._session.execute(
            select(ConsoleSession).where(ConsoleSession.id == session_id).with_for_update()
        )
        return result.scalar_one_or_none()

    async def flush(self) -> None:
        await self._session.flush()
