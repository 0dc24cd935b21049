"""Migrations run from empty and step down and up again, on both databases."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from ssbg.infrastructure.db import migrate
from ssbg.infrastructure.db.base import Base
from ssbg.infrastructure.db.engine import create_engine
from tests.support.databases import create_empty_postgres, drop_postgres, postgres_base_url

# Alembic runs batch mode on SQLite and transactional DDL on PostgreSQL.
pytestmark = pytest.mark.both_backends


@pytest.fixture
async def empty_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    base = postgres_base_url()
    assert base is not None
    url, name = await create_empty_postgres(base)
    try:
        yield url
    finally:
        await drop_postgres(base, name)


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_from_empty_creates_every_model_table(empty_url: str) -> None:
    await migrate.upgrade(empty_url)

    assert await migrate.current_revision(empty_url) == migrate.head_revision()
    assert set(Base.metadata.tables) <= await _tables(empty_url)


async def test_upgrade_seeds_the_chain_head_and_system_state(empty_url: str) -> None:
    await migrate.upgrade(empty_url)
    engine = create_engine(empty_url)
    try:
        async with engine.connect() as connection:
            head = (
                await connection.execute(text("SELECT sequence_number FROM audit_chain_head"))
            ).all()
            state = (
                await connection.execute(text("SELECT incident_level FROM system_state"))
            ).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in head] == [(0,)]
    assert [tuple(row) for row in state] == [(0,)]


async def test_downgrade_one_step_then_upgrade_again(empty_url: str) -> None:
    await migrate.upgrade(empty_url)

    await migrate.downgrade(empty_url, "-1")
    after_down = await migrate.current_revision(empty_url)
    await migrate.upgrade(empty_url)

    assert after_down != migrate.head_revision()
    assert await migrate.current_revision(empty_url) == migrate.head_revision()
    assert set(Base.metadata.tables) <= await _tables(empty_url)
