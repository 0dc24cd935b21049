"""PostgreSQL: an append's COMMIT releases the chain-head lock before its WAL flush, and the
gateway waits for that flush before it returns — so nothing is reported done before it is
durable. These tests read the server's WAL positions to show the wait really happens."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.infrastructure.db.database import wait_for_wal_flush
from ssbg.infrastructure.db.models import SystemState
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit_chain import rich_event
from tests.support.processes import wait_until
from tests.support.rows import set_fields

FLUSHED_SINCE = text("SELECT pg_current_wal_flush_lsn() >= CAST(CAST(:lsn AS text) AS pg_lsn)")
INSERT_POSITION = text("SELECT CAST(pg_current_wal_insert_lsn() AS text)")


# WAL flushes are PostgreSQL's.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]


async def test_barrier_flushes_every_earlier_asynchronous_commit(services: Services) -> None:
    async with AsyncSession(services.db.engine) as session:
        async with session.begin():
            await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            await session.execute(text("UPDATE system_state SET incident_level = incident_level"))
        position = (await session.execute(INSERT_POSITION)).scalar_one()
        await session.commit()

        await wait_for_wal_flush(session)

        assert (await session.execute(FLUSHED_SINCE, {"lsn": position})).scalar_one() is True


async def test_append_returns_only_after_its_commit_is_flushed(services: Services) -> None:
    async with services.db.transaction(write=True) as tx:
        await services.trail.append(tx, rich_event(1))
        before_commit = (await tx.session.execute(INSERT_POSITION)).scalar_one()

    async with AsyncSession(services.db.engine) as session:
        flushed = (await session.execute(FLUSHED_SINCE, {"lsn": before_commit})).scalar_one()

    assert flushed is True


async def test_an_entry_records_the_incident_level_committed_before_its_lock(
    services: Services, bootstrap_key: IssuedApiKey
) -> None:
    """The transaction read the state early; another replica changed the level before this
    one appended. The entry records the level in force when it joined the chain."""
    async with services.db.transaction(write=True) as tx:
        state = await tx.system_state.get()  # held: the session keeps it in its identity map
        assert state.incident_level == 0
        await set_fields(services, SystemState, 1, incident_level=2)  # the other replica
        entry = await services.trail.append(tx, rich_event(1))

    assert entry.fields.incident_level == 2


WAITING_ON_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def test_an_incident_change_committed_while_an_append_waits_for_the_lock_is_recorded(
    services: Services,
) -> None:
    """The append's lock statement reads the incident state as it was when it started, then
    queues for the chain-head lock; the replica ahead of it changes the level and commits. The
    entry still records the new level (its guarded insert finds the state changed, and the
    lock statement, run again under the lock, reads the new level)."""
    async with AsyncSession(services.db.engine) as ahead:
        await ahead.begin()
        await ahead.execute(text("UPDATE system_state SET incident_level = 2"))
        await ahead.execute(text("SELECT 1 FROM audit_chain_head WHERE id = 1 FOR UPDATE"))

        async def append() -> int:
            async with services.db.transaction(write=True) as tx:
                entry = await services.trail.append(tx, rich_event(1))
            return entry.fields.incident_level

        queued = asyncio.create_task(append())
        async with AsyncSession(services.db.engine) as observer:

            async def queued_for_the_lock() -> bool:
                # A transaction reads pg_stat_activity once, on first access, and sees that
                # snapshot until it ends: each look is a transaction of its own.
                async with observer.begin():
                    waiting = (await observer.execute(WAITING_ON_A_LOCK)).scalar_one()
                return bool(waiting > 0) or queued.done()

            await wait_until(queued_for_the_lock)
        if queued.done():
            level = await queued  # raises the append's error if it failed
            pytest.fail(f"the append finished (level {level}) without waiting for the lock")
        await ahead.commit()

        assert await queued == 2
