"""PostgreSQL: an append's COMMIT releases the chain-head lock before its WAL flush, and the
gateway waits for that flush before it returns — so nothing is reported done before it is
durable. These tests read the server's WAL positions to show the wait really happens."""

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.services.container import Services
from ssbg.services.unit_of_work import wait_for_wal_flush
from tests.support.audit_chain import rich_event

FLUSHED_SINCE = text("SELECT pg_current_wal_flush_lsn() >= CAST(CAST(:lsn AS text) AS pg_lsn)")
INSERT_POSITION = text("SELECT CAST(pg_current_wal_insert_lsn() AS text)")


@pytest.fixture(autouse=True)
def _postgres_only(services: Services) -> None:
    if services.db.dialect != "postgresql":
        pytest.skip("WAL flushes are PostgreSQL's")


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
