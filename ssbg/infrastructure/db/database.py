"""The database as the services see it: transactions that fail closed.

``async with db.transaction(write=True) as tx:`` opens one transaction, hands the caller a unit
of work built on its session (the composition root says which: the infrastructure does not know
the repositories), commits when the block exits and rolls back on an exception. Failures of the
database itself — unreachable, or out of resources such as a full disk — surface as
``DatabaseUnavailable`` (503).

Work that must only happen once a transaction is committed and durable (advancing the audit
anchor, which must never name an entry that could still be lost) is handed to the unit of work
as an after-commit callback: it runs after the commit (and, on PostgreSQL, the wait for the WAL
flush), with the connection already back in the pool, and never for a transaction that rolled
back. The transaction is committed by then, so a callback's failure is logged and swallowed:
reporting a committed change as failed would be a lie of its own.
"""

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ssbg.domain.errors import DatabaseUnavailable
from ssbg.infrastructure.db.engine import WRITE_OPTION, create_engine, sqlite_database_file

_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError, OSError, TimeoutError)

DURABILITY_BARRIER = "SELECT pg_logical_emit_message(true, 'ssbg.durability-barrier', '')"

# The write that proves the database takes writes: the one row of ``system_state`` set to
# itself, always rolled back. Not the audit chain head: every append locks that row.
WRITE_PROBE = "UPDATE system_state SET id = id WHERE id = 1"
# PostgreSQL: a row lock is a write (refused on a standby and in a read-only transaction), and
# SKIP LOCKED never waits: restore admission and incident changes lock this row all day, and a
# probe queued behind them would take a busy replica out of its load balancer.
WRITE_PROBE_POSTGRES = "SELECT id FROM system_state WHERE id = 1 FOR UPDATE SKIP LOCKED"
# SQLite: the least free space on the database file's filesystem (where its WAL grows) that
# still counts as writable. The probe's write is rolled back before it reaches the disk, so a
# full disk is seen here; a backup's completion commits a few dozen pages to the WAL.
SQLITE_MIN_FREE_BYTES = 1024 * 1024


# SQLSTATE classes (PostgreSQL) of a server that cannot do the work for a reason of its own,
# whatever the request: 08 connection exception, 53 insufficient resources (53100 disk full,
# out of memory, too many connections), 57P operator intervention (shutting down, starting
# up), 58 system error (an I/O error). SQLite's own ("database or disk is full", "disk I/O
# error") arrive as OperationalError.
# 08 connection, 53 resources (disk full), 57P shutdown/starting, 58 I/O; 25006: the server
# answers read-only (a standby after a failover) — down for writes, not a wrong request.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "58", "25006")


def _sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None)
    return code if isinstance(code, str) else None


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is down or out of resources (503), not that this
    request or the code is wrong."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    code = _sqlstate(exc)
    return code is not None and code.startswith(_UNAVAILABLE_SQLSTATES)


async def wait_for_wal_flush(session: AsyncSession) -> None:
    """Return once every transaction committed before this call is on disk (PostgreSQL).

    A transaction that wrote WAL waits at COMMIT (default ``synchronous_commit``) until WAL up
    to its commit record is flushed — which covers every commit record before it. The smallest
    such transaction is one statement in autocommit mode that writes one WAL record: a
    transactional logical-decoding message (executable by any role, any ``wal_level``; a
    transaction that only took a transaction id writes no WAL and would not wait).
    Concurrent callers share one flush.
    """
    connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    await connection.exec_driver_sql(DURABILITY_BARRIER)


def _check_room_for(database_file: Path) -> None:
    try:
        stat = os.statvfs(database_file.parent)
    except OSError:
        raise DatabaseUnavailable("The database's folder cannot be examined.") from None
    if stat.f_bavail * stat.f_frsize < SQLITE_MIN_FREE_BYTES:
        raise DatabaseUnavailable("The database's disk is full.")


AfterCommit = Callable[[], Awaitable[None]]
log = structlog.get_logger("ssbg.db")


async def run_after_commit(callbacks: Sequence[AfterCommit]) -> None:
    """Run ``callbacks`` in order; one that fails is logged (its exception's type only: no
    message, which could carry data) and does not keep the others from running."""
    for callback in callbacks:
        try:
            await callback()
        except Exception as exc:
            log.error("after_commit_callback_failed", error=type(exc).__name__)


class TransactionScope(Protocol):
    """What the database needs of a unit of work: whether its commit must be followed by a
    durability barrier (set when it committed before its WAL was flushed), and the callbacks
    to run once the transaction is committed and durable."""

    flush_after_commit: bool

    def take_after_commit(self) -> Sequence[AfterCommit]:
        """The callbacks registered in this transaction, in order (each handed out once)."""
        ...


UnitOfWorkT = TypeVar("UnitOfWorkT", bound=TransactionScope)


class Database(Generic[UnitOfWorkT]):
    def __init__(
        self,
        url: str,
        unit_of_work: Callable[[AsyncSession, bool], UnitOfWorkT],
        *,
        pool_size: int = 10,
    ) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(url, pool_size=pool_size)
        self._unit_of_work = unit_of_work
        self._readers = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writers = async_sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        # A SQLite read transaction in WAL mode is a snapshot already.
        self._snapshots = (
            self._readers
            if self.engine.dialect.name == "sqlite"
            else async_sessionmaker(
                self.engine.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                ),
                expire_on_commit=False,
            )
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def make_unit_of_work(self, session: AsyncSession, *, writable: bool) -> UnitOfWorkT:
        return self._unit_of_work(session, writable)

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[UnitOfWorkT]:
        async with self._session(self._writers if write else self._readers) as session:
            async with session.begin():
                tx = self.make_unit_of_work(session, writable=write)
                yield tx
            if tx.flush_after_commit:
                await wait_for_wal_flush(session)
        await run_after_commit(tx.take_after_commit())

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[UnitOfWorkT]:
        """A read-only transaction whose statements all see the same committed state.

        For long reads in many statements that must agree with each other (validating or
        exporting the audit chain while appends continue).
        """
        async with self._session(self._snapshots) as session, session.begin():
            yield self.make_unit_of_work(session, writable=False)

    async def ping(self) -> None:
        async with self._session(self._readers) as session, session.begin():
            await session.execute(text("SELECT 1"))

    async def check_writable(self) -> None:
        """Prove the database takes writes, not only that it answers; raises
        ``DatabaseUnavailable``.

        A write transaction (``BEGIN IMMEDIATE`` on SQLite: it takes the write lock) updates one
        row to itself — on PostgreSQL locks it, skipping it if another transaction holds it —
        and is rolled back, so nothing changes. A database file that cannot be
        written (immutable, read-only mount) or a PostgreSQL that is read-only (a standby, a
        read-only default) fails it the way every real write would fail. The rolled-back write
        never reaches the disk, so on SQLite the database file's filesystem must also have
        ``SQLITE_MIN_FREE_BYTES`` free: a full disk fails the commits that grow the WAL. (A
        PostgreSQL server's disk is not visible from here.) The caller bounds the check with a
        timeout: on SQLite the lock waits behind a writer that holds it.
        """
        try:
            async with self._session(self._writers) as session:
                try:
                    probe = WRITE_PROBE_POSTGRES if self.dialect == "postgresql" else WRITE_PROBE
                    await session.execute(text(probe))
                finally:
                    await session.rollback()
        except DBAPIError:
            raise DatabaseUnavailable("The database does not take writes.") from None
        database_file = sqlite_database_file(self.url) if self.dialect == "sqlite" else None
        if database_file is not None:
            await asyncio.to_thread(_check_room_for, database_file)

    async def dispose(self) -> None:
        await self.engine.dispose()

    @staticmethod
    @asynccontextmanager
    async def _session(
        sessions: async_sessionmaker[AsyncSession],
    ) -> AsyncIterator[AsyncSession]:
        try:
            async with sessions() as session:
                yield session
        except Exception as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable() from exc
            raise
