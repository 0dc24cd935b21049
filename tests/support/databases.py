"""One fresh, migrated database per test, on SQLite and (when configured) PostgreSQL.

Migrating from empty runs once per session into a template; each test then gets a copy
(a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so tests never see
each other's rows and parallel runs never interfere.

On PostgreSQL the copies are made and dropped by a thread of the template's own, off the
tests' path: the next test's database is created while a test runs (a CREATE copies the
template through the WAL). Used ones are dropped in batches of ``DROP_BATCH``: every DROP
DATABASE forces a checkpoint, which writes out every other database's dirty pages too; in a
row, only the first of a batch has much to write (dropped one by one after each test, they
cost PostgreSQL 40 % more CPU for the same tests, about 0.15 CPU-seconds a test). A batch
holds at most ``DROP_BATCH`` small databases on disk.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from ssbg.infrastructure.db.migrate import upgrade

T = TypeVar("T")
POSTGRES_URL_ENV = "SSBG_TEST_POSTGRES_URL"
DROP_BATCH = 32


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on its own loop in a worker thread.

    Session fixtures are sometimes first requested from inside a running test loop, where
    ``asyncio.run`` is not allowed.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def postgres_base_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or None


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin_execute(base_url: str, statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(base_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


class SqliteTemplate:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.db"
        run_blocking(upgrade(f"sqlite+aiosqlite:///{self.path}"))

    def fresh(self, directory: Path) -> str:
        target = directory / "ssbg.db"
        shutil.copyfile(self.path, target)
        return f"sqlite+aiosqlite:///{target}"


class PostgresTemplate:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.name = f"ssbg_tpl_{uuid.uuid4().hex[:12]}"
        run_blocking(_admin_execute(base_url, f'CREATE DATABASE "{self.name}"'))
        run_blocking(upgrade(with_database(base_url, self.name)))
        # One thread creates and drops the copies, in order, while the tests run.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssbg-pg-copies")
        self._next: Future[str] = self._worker.submit(self._create_copy)
        self._drops: list[Future[None]] = []
        self._used: list[str] = []

    def _create_copy(self) -> str:
        name = f"ssbg_t_{uuid.uuid4().hex[:16]}"
        statement = f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"'
        asyncio.run(_admin_execute(self.base_url, statement))
        return name

    def _drop(self, names: list[str]) -> None:
        for name in names:
            asyncio.run(drop_postgres(self.base_url, name))

    async def fresh(self) -> tuple[str, str]:
        """A database no test has used (made while the previous test ran); the next one is
        started at once."""
        name = await asyncio.wrap_future(self._next)
        self._next = self._worker.submit(self._create_copy)
        return with_database(self.base_url, name), name

    def drop(self, name: str) -> None:
        """Drop ``name`` (its test is over and its connections closed) in the background, with
        the next ``DROP_BATCH`` - 1 used ones."""
        self._used.append(name)
        if len(self._used) >= DROP_BATCH:
            self._drops.append(self._worker.submit(self._drop, self._used))
            self._used = []

    def close(self) -> None:
        """Drop the used copies left and the unused one, wait for every drop, then drop the
        template."""
        self._drops.append(self._worker.submit(self._drop, [*self._used, self._next.result()]))
        self._worker.shutdown(wait=True)
        for done in self._drops:
            done.result()  # a drop that failed fails the session's teardown
        run_blocking(drop_postgres(self.base_url, self.name))


async def create_empty_postgres(base_url: str) -> tuple[str, str]:
    name = f"ssbg_e_{uuid.uuid4().hex[:16]}"
    await _admin_execute(base_url, f'CREATE DATABASE "{name}"')
    return with_database(base_url, name), name


async def drop_postgres(base_url: str, name: str) -> None:
    await _admin_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
