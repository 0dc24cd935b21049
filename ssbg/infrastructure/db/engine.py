"""Async engine construction for SQLite (embedded default) and PostgreSQL (production).

SQLite: WAL journal, ``synchronous=FULL`` (a committed backup record survives power loss),
foreign keys on, and explicit ``BEGIN``: write transactions open with ``BEGIN IMMEDIATE`` so
writers queue on the database lock from their first statement instead of failing to upgrade
a read lock later — this is what serialises audit appends across processes on SQLite.
PostgreSQL: appends serialise on a row lock of the chain-head row instead.
"""

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

WRITE_OPTION = "ssbg_write"
SQLITE_BUSY_TIMEOUT_SECONDS = 60


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url)
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=30,
        connect_args={"timeout": 10, "command_timeout": 60},
    )


def _create_sqlite_engine(url: str) -> AsyncEngine:
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
