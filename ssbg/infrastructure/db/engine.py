"""Async engine construction for SQLite (embedded default) and PostgreSQL (production).

SQLite: the database file is created 0600 in folders 0700 before SQLite opens it; WAL
journal, ``synchronous=FULL`` (a committed backup record survives power loss), foreign keys
on, and explicit ``BEGIN``: write transactions open with ``BEGIN IMMEDIATE`` so
writers queue on the database lock from their first statement instead of failing to upgrade
a read lock later — this is what serialises audit appends across processes on SQLite.
PostgreSQL: appends serialise on a row lock of the chain-head row instead. A pooled connection
is pinged before use only when it has sat idle for ``PING_AFTER_IDLE_SECONDS`` (SQLAlchemy's
``pool_pre_ping`` would ping on every checkout: three round trips, and every request checks a
connection out at least once). A connection that dies while in steady use fails its statement
instead: that request gets 503 ``DATABASE_UNAVAILABLE`` and the pool drops every connection
older than the failure, so the next request reconnects.
"""

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from ssbg.infrastructure.private_files import (
    make_private_directories,
    make_private_file,
    restrict_existing_file,
)

WRITE_OPTION = "ssbg_write"
SQLITE_BUSY_TIMEOUT_SECONDS = 60
PING_AFTER_IDLE_SECONDS = 10.0
_CHECKED_IN_AT = "ssbg_checked_in_at"


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url)
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=30,
        connect_args={"timeout": 10, "command_timeout": 60},
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool replaces this connection (and every one older) and tries again.
            raise exc.InvalidatePoolError() from error


def sqlite_database_file(url: str) -> Path | None:
    """The file of a SQLite database URL; ``None`` in memory, or for a URI filename
    (read-only, shared cache …) that SQLite resolves itself."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _make_sqlite_files_private(url: str) -> None:
    """The database file 0600 in folders 0700, created before SQLite opens it: SQLite creates
    the ``-wal`` and ``-shm`` files with the database file's mode, so they are 0600 too. Files
    left more open by an earlier version are tightened."""
    path = sqlite_database_file(url)
    if path is None:
        return
    make_private_directories(path.parent)
    make_private_file(path)
    for suffix in ("-wal", "-shm"):
        restrict_existing_file(path.with_name(path.name + suffix))


def _create_sqlite_engine(url: str) -> AsyncEngine:
    _make_sqlite_files_private(url)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
