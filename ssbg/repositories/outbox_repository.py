"""The webhook outbox (SPEC §13.2): notifications written in their trigger's transaction.

A sender claims due rows by setting a lease (``claimed_until``, ``claimed_by``) in a short
write transaction, delivers them after the commit, and reports the outcome with a
compare-and-set on its claim: a sender whose lease lapsed and whose row was claimed by another
changes nothing.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.webhooks import SetAhead
from ssbg.infrastructure.db.models import OutboxNotification

ERROR_LENGTH = 300
# The ``last_error`` of a row never to be sent (its seal does not match).
REFUSED = "TAMPERED: not sent"


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, event: str, body: str, now: datetime, seal: str) -> None:
        self._session.add(
            OutboxNotification(
                event=event, body=body, created_at=now, attempts=0, next_attempt_at=now, seal=seal
            )
        )

    async def claim_due(
        self,
        now: datetime,
        *,
        claimer: str,
        lease_until: datetime,
        limit: int,
        set_ahead: SetAhead,
    ) -> Sequence[OutboxNotification]:
        """Lease up to ``limit`` undelivered rows that are due and not leased by a live
        claim, oldest first, counting the attempt that begins now. A retry time or a claim
        that only a clock ahead of ours can have set (``set_ahead``) counts as due / lapsed
        too; a refused row never does.

        PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent senders take disjoint rows
        without waiting for each other. SQLite: the write transaction (``BEGIN IMMEDIATE``)
        already serialises claims.
        """
        not_refused = or_(
            OutboxNotification.last_error.is_(None), OutboxNotification.last_error != REFUSED
        )
        due = or_(
            OutboxNotification.next_attempt_at <= now,
            and_(OutboxNotification.next_attempt_at > set_ahead.retry_after, not_refused),
        )
        lapsed = or_(
            OutboxNotification.claimed_until <= now,
            OutboxNotification.claimed_until > set_ahead.claim_after,
        )
        statement = (
            select(OutboxNotification)
            .where(
                OutboxNotification.delivered_at.is_(None),
                due,
                or_(OutboxNotification.claimed_until.is_(None), lapsed),
            )
            .order_by(OutboxNotification.next_attempt_at, OutboxNotification.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (await self._session.execute(statement)).scalars().all()
        for row in rows:
            row.claimed_until = lease_until
            row.claimed_by = claimer
            row.attempts += 1
        return rows

    async def mark_delivered(self, notification_id: int, *, claimer: str, now: datetime) -> bool:
        """Record the receiver's 2xx, if the row is still leased by ``claimer``."""
        return await self._settle(notification_id, claimer, delivered_at=now, last_error=None)

    async def schedule_retry(
        self, notification_id: int, *, claimer: str, next_attempt_at: datetime, error: str
    ) -> bool:
        """Release the lease of a failed attempt and set when to try again."""
        return await self._settle(
            notification_id,
            claimer,
            next_attempt_at=next_attempt_at,
            last_error=error[:ERROR_LENGTH],
        )

    async def refuse(self, notification_id: int, *, claimer: str, never: datetime) -> bool:
        """Never send this row (its seal does not match): kept, as evidence, never due."""
        return await self._settle(
            notification_id, claimer, next_attempt_at=never, last_error=REFUSED
        )

    async def _settle(self, notification_id: int, claimer: str, **values: object) -> bool:
        # claimed_by stays: it names the sender of the last attempt.
        result = await self._session.execute(
            update(OutboxNotification)
            .where(
                OutboxNotification.id == notification_id,
                OutboxNotification.claimed_by == claimer,
                OutboxNotification.claimed_until.is_not(None),
                OutboxNotification.delivered_at.is_(None),
            )
            .values(claimed_until=None, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def prune_delivered(self, before: datetime) -> int:
        """Delete notifications delivered before ``before``; undelivered ones always stay."""
        result = await self._session.execute(
            delete(OutboxNotification)
            .where(
                OutboxNotification.delivered_at.is_not(None),
                OutboxNotification.delivered_at < before,
            )
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))
