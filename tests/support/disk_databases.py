"""A test's database on a small disk (``tests/support/small_disk.py``), for the disk-full cells.

* SQLite: the database file is copied onto the disk; SQLite keeps its ``-wal`` and ``-shm``
  beside it, so the WAL is on the small disk too.
* PostgreSQL: a tablespace on the disk (the mount is owned by ``postgres``, so the server must
  run on this machine), and every table and index of the test database moved into it. The
  system catalogs and the WAL stay where the server keeps them: the cell fills the disk that
  holds SSBG's rows, not the server's own. On the way out the database is dropped (it holds the
  tablespace's files), then the tablespace.
"""

import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from tests.support.databases import drop_postgres, postgres_base_url
from tests.support.small_disk import SmallDisk, cannot_use_small_disk


def sqlite_path(url: str) -> Path:
    return Path(make_url(url).database or "")


def sqlite_database_on(disk: SmallDisk, url: str) -> str:
    """Copy the (closed) SQLite database at ``url`` onto ``disk``; its URL there."""
    target = disk.path / "ssbg.db"
    shutil.copyfile(sqlite_path(url), target)
    return f"sqlite+aiosqlite:///{target}"


def empty_sqlite_wal(url: str) -> None:
    """Checkpoint the WAL into the database file and truncate it to nothing, so the next
    commit has to grow it. (SQLite reuses a WAL file's space once a checkpoint has caught up:
    a small commit can still succeed on a full disk, and does so truthfully.)"""
    connection = sqlite3.connect(sqlite_path(url))
    try:
        busy, _frames, _done = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        connection.close()
    assert busy == 0, "a reader kept the WAL from being truncated"


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_asyncpg_url(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def postgres_tables_on(disk: SmallDisk, url: str) -> AsyncIterator[str]:
    """The PostgreSQL database at ``url`` with all its tables and indexes in a tablespace on
    ``disk``; yields ``url``. Drops the database and the tablespace on the way out."""
    base_url = postgres_base_url()
    assert base_url is not None
    tablespace = f"ssbg_small_disk_{uuid.uuid4().hex[:12]}"
    try:
        await _execute(base_url, f"CREATE TABLESPACE {tablespace} LOCATION '{disk.path}'")
    except asyncpg.PostgresError as error:
        cannot_use_small_disk(
            f"PostgreSQL cannot put a tablespace on {disk.path} ({error.sqlstate}): the server "
            "must run on this machine as the user 'postgres'"
        )
    try:
        await _execute(
            url,
            f"ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE {tablespace}",
            f"ALTER INDEX ALL IN TABLESPACE pg_default SET TABLESPACE {tablespace}",
        )
        yield url
    finally:
        await drop_postgres(base_url, make_url(url).database or "")
        await _execute(base_url, f"DROP TABLESPACE {tablespace}")
