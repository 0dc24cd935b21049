"""Failed authentications per source address and minute, and the windows an address was
throttled in (SPEC §13.2): shared by every replica through the database."""

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.auth_throttle import FailureBucket, RecentFailures
from ssbg.infrastructure.db.models import AuthFailureCount, AuthThrottleWindow
from ssbg.repositories.detection_repository import upsert


class AuthFailuresRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def recent(
        self, source_ip: str, since: datetime, window_start: datetime
    ) -> RecentFailures:
        """The buckets of ``source_ip`` from minute ``since`` on, and whether its throttle
        window ``window_start`` is recorded — in one statement (the throttled path's only
        one). An address with no buckets has no throttle to check: ``window_recorded`` is
        then ``False`` without being read."""
        recorded = exists().where(
            AuthThrottleWindow.source_ip == source_ip,
            AuthThrottleWindow.window_start == window_start,
        )
        rows = await self._session.execute(
            select(AuthFailureCount.minute, AuthFailureCount.failures, recorded).where(
                AuthFailureCount.source_ip == source_ip, AuthFailureCount.minute >= since
            )
        )
        found = rows.all()
        return RecentFailures(
            buckets=[FailureBucket(minute, failures) for minute, failures, _ in found],
            window_recorded=bool(found) and bool(found[0][2]),
        )

    async def count_failure(self, source_ip: str, minute: datetime, *, at_most: int) -> bool:
        """Add one failure to the bucket (``source_ip``, ``minute``) if it holds at most
        ``at_most`` failures (a new bucket is always created); return whether it was added.

        One statement, so concurrent failures from one address cannot both pass the check: on
        PostgreSQL the conflicting row is locked and the condition evaluated on its latest
        version; on SQLite writers are serialised anyway.
        """
        statement = upsert(self._session, AuthFailureCount).values(
            source_ip=source_ip, minute=minute, failures=1
        )
        statement = statement.on_conflict_do_update(
            index_elements=["source_ip", "minute"],
            set_={"failures": AuthFailureCount.failures + 1},
            where=AuthFailureCount.failures <= at_most,
        ).returning(AuthFailureCount.failures)
        return (await self._session.execute(statement)).first() is not None

    async def open_window(self, source_ip: str, window_start: datetime, now: datetime) -> bool:
        """Record that ``source_ip`` is throttled in window ``window_start``; ``True`` only
        for the one caller (of all replicas) whose insert created the row."""
        statement = (
            upsert(self._session, AuthThrottleWindow)
            .values(source_ip=source_ip, window_start=window_start, throttled_at=now)
            .on_conflict_do_nothing(index_elements=["source_ip", "window_start"])
            .returning(AuthThrottleWindow.source_ip)
        )
        return (await self._session.execute(statement)).first() is not None

    async def purge_before(self, cutoff: datetime) -> None:
        """Forget buckets and windows of every address older than ``cutoff``."""
        await self._session.execute(
            delete(AuthFailureCount)
            .where(AuthFailureCount.minute < cutoff)
            .execution_options(synchronize_session=False)
        )
        await self._session.execute(
            delete(AuthThrottleWindow)
            .where(AuthThrottleWindow.window_start < cutoff)
            .execution_options(synchronize_session=False)
        )
