"""One fresh, migrated database per test, on SQLite and (when configured) PostgreSQL.

Migrating from empty runs once per session into a template; each test then gets a copy
(a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so tests never see
each other's rows and parallel runs never interfere.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from ssbg.infrastructure.db.migrate import upgrade

T = TypeVar("T")
POSTGRES_URL_ENV = "SSBG_TEST_POSTGRES_URL"


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

    async def fresh(self) -> tuple[str, str]:
        name = f"ssbg_t_{uuid.uuid4().hex[:16]}"
        await _admin_execute(self.base_url, f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
        return with_database(self.base_url, name), name

    async def drop(self, name: str) -> None:
        await _admin_execute(self.base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        run_blocking(
            _admin_execute(self.base_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        )


async def create_empty_postgres(base_url: str) -> tuple[str, str]:
    name = f"ssbg_e_{uuid.uuid4().hex[:16]}"
    await _admin_execute(base_url, f'CREATE DATABASE "{name}"')
    return with_database(base_url, name), name


async def drop_postgres(base_url: str, name: str) -> None:
    await _admin_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
