"""Transactions, owned by the service layer.

``async with db.transaction(write=True) as tx:`` opens one transaction, exposes the
repositories on ``tx`` and commits when the block exits (rolls back on an exception).
Failures of the database itself surface as ``DatabaseUnavailable`` (503): fail closed.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ssbg.domain.errors import DatabaseUnavailable
from ssbg.infrastructure.db.engine import WRITE_OPTION, create_engine
from ssbg.repositories.api_keys_repository import ApiKeysRepository
from ssbg.repositories.audit_repository import AuditRepository, LockedHead
from ssbg.repositories.backups_repository import BackupsRepository
from ssbg.repositories.incident_repository import IncidentRepository
from ssbg.repositories.key_versions_repository import KeyVersionsRepository
from ssbg.repositories.policies_repository import PoliciesRepository
from ssbg.repositories.restores_repository import RestoresRepository
from ssbg.repositories.system_state_repository import SystemStateRepository

_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError, OSError, TimeoutError)


def _is_connection_failure(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


DURABILITY_BARRIER = "SELECT pg_logical_emit_message(true, 'ssbg.durability-barrier', '')"


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


class UnitOfWork:
    """One open transaction and the repositories that work inside it."""

    def __init__(self, session: AsyncSession, *, writable: bool) -> None:
        self.session = session
        self.writable = writable
        self.api_keys = ApiKeysRepository(session)
        self.audit = AuditRepository(session)
        self.incidents = IncidentRepository(session)
        self.backups = BackupsRepository(session)
        self.key_versions = KeyVersionsRepository(session)
        self.policies = PoliciesRepository(session)
        self.restores = RestoresRepository(session)
        self.system_state = SystemStateRepository(session)
        self.flush_after_commit = False

    async def lock_audit_head(self) -> LockedHead:
        """Lock the audit chain head for an append (held until this transaction ends); also
        the incident state, read in the same statement (see ``AuditRepository.lock_head``).

        PostgreSQL: the same statement lets this transaction's COMMIT release its row locks
        before its WAL reaches disk; ``Database.transaction`` then waits for that flush before
        returning. Audit appends serialise on the chain-head row lock, so a lock held through
        each commit's fsync would cap the whole gateway at one append per disk flush. Released
        at commit instead, the next appender proceeds while the flushes of many transactions
        share one fsync (group commit). Nothing is reported done before it is durable, and WAL
        is replayed in order, so a crash can only lose a suffix of the chain whose callers
        were never told it succeeded — never a link in the middle.
        """
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        locked = await self.audit.lock_head(commit_before_flush=postgresql)
        self.flush_after_commit = self.flush_after_commit or postgresql
        return locked


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(url, pool_size=pool_size)
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

    def make_unit_of_work(self, session: AsyncSession, *, writable: bool) -> UnitOfWork:
        return UnitOfWork(session, writable=writable)

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[UnitOfWork]:
        sessions = self._writers if write else self._readers
        try:
            async with sessions() as session:
                async with session.begin():
                    tx = self.make_unit_of_work(session, writable=write)
                    yield tx
                if tx.flush_after_commit:
                    await wait_for_wal_flush(session)
        except Exception as exc:
            if _is_connection_failure(exc):
                raise DatabaseUnavailable() from exc
            raise

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[UnitOfWork]:
        """A read-only transaction whose statements all see the same committed state.

        For long reads in many statements that must agree with each other (validating or
        exporting the audit chain while appends continue).
        """
        try:
            async with self._snapshots() as session, session.begin():
                yield self.make_unit_of_work(session, writable=False)
        except Exception as exc:
            if _is_connection_failure(exc):
                raise DatabaseUnavailable() from exc
            raise

    async def ping(self) -> None:
        async with self.transaction(write=False) as tx:
            await tx.session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
