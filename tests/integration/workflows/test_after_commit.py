"""After-commit callbacks run once a transaction is committed and durable, never after a
rollback, with the connection back in the pool; a failing one does not fail the committed
transaction."""

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from ssbg.services.unit_of_work import AppDatabase, open_database
from tests.support.log_capture import logged_events


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AppDatabase]:
    database = open_database(database_url, pool_size=1)  # a callback that needs a second
    try:  # connection while the first is held would wait for ever
        yield database
    finally:
        await database.dispose()


async def incident_level(db: AppDatabase) -> int:
    async with db.transaction(write=False) as tx:
        level: int = (
            await tx.session.execute(text("SELECT incident_level FROM system_state"))
        ).scalar_one()
    return level


async def test_callbacks_run_after_the_commit_in_order_and_see_it(db: AppDatabase) -> None:
    seen: list[tuple[str, int]] = []

    async def first() -> None:
        seen.append(("first", await incident_level(db)))

    async def second() -> None:
        seen.append(("second", await incident_level(db)))

    async with db.transaction(write=True) as tx:
        await tx.session.execute(text("UPDATE system_state SET incident_level = 2"))
        tx.after_commit("a", first)
        tx.after_commit("b", second)
        assert seen == []

    assert seen == [("first", 2), ("second", 2)]


async def test_a_later_registration_under_the_same_key_replaces_the_earlier(
    db: AppDatabase,
) -> None:
    seen: list[str] = []

    async def record(name: str) -> None:
        seen.append(name)

    async with db.transaction(write=True) as tx:
        tx.after_commit("anchor", lambda: record("early"))
        assert tx.pending_after_commit("anchor") is not None
        tx.after_commit("anchor", lambda: record("late"))

    assert seen == ["late"]


async def test_no_callback_runs_after_a_rollback(db: AppDatabase) -> None:
    seen: list[str] = []

    async def record() -> None:
        seen.append("ran")

    async def failing_use_case() -> None:
        async with db.transaction(write=True) as tx:
            await tx.session.execute(text("UPDATE system_state SET incident_level = 1"))
            tx.after_commit("a", record)
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        await failing_use_case()

    assert seen == []
    assert await incident_level(db) == 0


async def test_a_failing_callback_is_logged_and_the_commit_stands(db: AppDatabase) -> None:
    seen: list[str] = []

    async def broken() -> None:
        raise OSError("disk full: /secret/path")

    async def after() -> None:
        seen.append("ran")

    with logged_events() as logged:
        async with db.transaction(write=True) as tx:
            await tx.session.execute(text("UPDATE system_state SET incident_level = 1"))
            tx.after_commit("broken", broken)
            tx.after_commit("after", after)

    assert await incident_level(db) == 1
    assert seen == ["ran"]
    failures = [line for line in logged if line["event"] == "after_commit_callback_failed"]
    assert [(line["error"], line["level"]) for line in failures] == [("OSError", "error")]
    assert "/secret/path" not in json.dumps(logged)
