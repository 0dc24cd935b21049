"""The webhook outbox (SPEC §13.2): notifications written in their trigger's transaction."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.infrastructure.db.models import OutboxNotification


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, event: str, body: str, now: datetime) -> None:
        self._session.add(
            OutboxNotification(
                event=event, body=body, created_at=now, attempts=0, next_attempt_at=now
            )
        )
