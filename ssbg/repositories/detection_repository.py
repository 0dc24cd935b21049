"""What the detection rules count (SPEC §9): audit actions in a time window, the addresses a
key restored from (M4), and bytes restored per day (M3)."""

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.detection import M3_BASELINE_DAYS, RestoreVolume
from ssbg.infrastructure.db.models import AuditLogEntry, KeySourceAddress, RestoreVolumeDay


def upsert(session: AsyncSession, model: Any) -> Any:
    """``INSERT`` of the session's dialect, which has ``on_conflict_do_…`` on both."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


class DetectionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def count_actions_since(
        self, action: str, since: datetime, *, source_ip: str | None = None
    ) -> int:
        """Audit entries with ``action`` that occurred at or after ``since``.

        Entries are appended under the chain-head lock with the time of the append, so their
        times rise with their sequence numbers: the window starts at the first sequence number
        at or after ``since`` (the occurred_at index), and the entries are counted on the
        (action, sequence) index — never a scan of all entries of that action.
        """
        first = (
            select(func.min(AuditLogEntry.sequence_number))
            .where(AuditLogEntry.occurred_at >= since)
            .scalar_subquery()
        )
        statement = select(func.count()).where(
            AuditLogEntry.action == action, AuditLogEntry.sequence_number >= first
        )
        if source_ip is not None:
            statement = statement.where(AuditLogEntry.source_ip == source_ip)
        return (await self._session.execute(statement)).scalar_one()

    async def record_restore_address(
        self, key_id: UUID, source_ip: str, now: datetime
    ) -> tuple[bool, bool]:
        """Record that ``key_id`` asked for a restore from ``source_ip``; return whether it had
        before from another address, and from this one."""
        rows = await self._session.execute(
            select(KeySourceAddress.source_ip).where(KeySourceAddress.api_key_id == key_id)
        )
        known = set(rows.scalars().all())
        statement = upsert(self._session, KeySourceAddress).values(
            api_key_id=key_id, source_ip=source_ip, first_seen_at=now, last_seen_at=now, restores=1
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["api_key_id", "source_ip"],
                set_={"last_seen_at": now, "restores": KeySourceAddress.restores + 1},
            )
        )
        return bool(known - {source_ip}), source_ip in known

    async def add_restored_bytes(self, day: date, restored_bytes: int) -> None:
        statement = upsert(self._session, RestoreVolumeDay).values(
            day=day.isoformat(), restored_bytes=restored_bytes, restores=1
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["day"],
                set_={
                    "restored_bytes": RestoreVolumeDay.restored_bytes + restored_bytes,
                    "restores": RestoreVolumeDay.restores + 1,
                },
            )
        )

    async def restore_volume(self, today: date) -> RestoreVolume:
        """Today's bytes, the ``M3_BASELINE_DAYS`` days before it, and the days of history."""
        first_day = today - timedelta(days=M3_BASELINE_DAYS)
        rows = await self._session.execute(
            select(RestoreVolumeDay).where(RestoreVolumeDay.day >= first_day.isoformat())
        )
        by_day = {row.day: row for row in rows.scalars().all()}
        trailing: Sequence[date] = [first_day + timedelta(days=n) for n in range(M3_BASELINE_DAYS)]
        oldest = (await self._session.execute(select(func.min(RestoreVolumeDay.day)))).scalar_one()
        history_days = (today - date.fromisoformat(oldest)).days if oldest else 0
        today_row = by_day.get(today.isoformat())
        return RestoreVolume(
            today_bytes=today_row.restored_bytes if today_row else 0,
            trailing_bytes=[
                by_day[d.isoformat()].restored_bytes if d.isoformat() in by_day else 0
                for d in trailing
            ],
            trailing_restores=sum(
                by_day[d.isoformat()].restores for d in trailing if d.isoformat() in by_day
            ),
            history_days=history_days,
        )
