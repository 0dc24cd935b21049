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
from ssbg.repositories.audit_repository import AuditRepository
from ssbg.repositories.backups_repository import BackupsRepository
from ssbg.repositories.key_versions_repository import KeyVersionsRepository
from ssbg.repositories.policies_repository import PoliciesRepository
from ssbg.repositories.system_state_repository import SystemStateRepository

_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError, OSError, TimeoutError)


def _is_connection_failure(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class UnitOfWork:
    """One open transaction and the repositories that work inside it."""

    def __init__(self, session: AsyncSession, *, writable: bool) -> None:
        self.session = session
        self.writable = writable
        self.api_keys = ApiKeysRepository(session)
        self.audit = AuditRepository(session)
        self.backups = BackupsRepository(session)
        self.key_versions = KeyVersionsRepository(session)
        self.policies = PoliciesRepository(session)
        self.system_state = SystemStateRepository(session)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(url, pool_size=pool_size)
        self._readers = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writers = async_sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
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
            async with sessions() as session, session.begin():
                yield self.make_unit_of_work(session, writable=write)
        except Exception as exc:
            if _is_connection_failure(exc):
                raise DatabaseUnavailable() from exc
            raise

    async def ping(self) -> None:
        async with self.transaction(write=False) as tx:
            await tx.session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
