"""PostgreSQL: pooled connections are pinged before use only after sitting idle, and a
connection that died while in steady use fails closed (503) once, then the pool recovers."""

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from ssbg.domain.errors import DatabaseUnavailable
from ssbg.infrastructure.db import engine as engine_module
from ssbg.services.unit_of_work import AppDatabase, open_database

# Connection pooling and server-side termination are PostgreSQL's.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AppDatabase]:
    database = open_database(database_url, pool_size=1)  # plain statements: no sealed row
    try:
        yield database
    finally:
        await database.dispose()


async def backend_pid(db: AppDatabase) -> int:
    async with db.transaction(write=False) as tx:
        pid: int = (await tx.session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def terminate(database_url: str, pid: int) -> None:
    """Terminate a server process and wait (up to 5 s) until it has gone."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    admin = await asyncpg.connect(dsn)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid) is True
    finally:
        await admin.close()


async def test_a_connection_lost_in_steady_use_fails_closed_once_then_the_pool_reconnects(
    db: AppDatabase, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 3600.0)  # however slow we are
    pid = await backend_pid(db)
    await terminate(database_url, pid)

    with pytest.raises(DatabaseUnavailable):
        await backend_pid(db)  # used again at once: no ping, the statement itself fails

    assert await backend_pid(db) != pid


async def test_a_connection_idle_past_the_limit_is_pinged_and_replaced_before_use(
    db: AppDatabase, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = await backend_pid(db)
    await terminate(database_url, pid)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)

    assert await backend_pid(db) != pid  # the ping found it dead: no error reaches the caller
