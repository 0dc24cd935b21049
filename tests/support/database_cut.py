"""Cutting PostgreSQL away from a gateway at a chosen moment inside a transaction.

The gateway reaches PostgreSQL through a :class:`~tests.support.tcp_proxy.TcpProxy`; the test
keeps a direct connection of its own (``DirectConnection``) to watch and to hold locks.

To cut *inside* a transaction, deterministically: the test takes ``LOCK TABLE
audit_log_entries IN SHARE MODE`` on its direct connection (:meth:`DirectConnection.
holding_audit_appends`). Reads go on; the gateway's next audit append — every state change
appends its entry after writing its state, in the same transaction — waits for that lock.
The test sees that backend waiting (``pg_stat_activity``), and which tables it has already
written (its ``RowExclusiveLock``s in ``pg_locks``), and cuts the proxy then: the gateway's
transaction has written its state and not yet its audit entry.

PostgreSQL notices the lost client only when it next talks to it: the cut backend keeps its
locks until the test releases the table lock, then fails to send its reply and rolls back.
:meth:`DirectConnection.wait_gone` waits for that, so the next step starts clean.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.support.tcp_proxy import TcpProxy


def through_proxy(url: str, proxy: TcpProxy) -> str:
    """``url`` with its host and port replaced by the proxy's (user and database kept)."""
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))


def upstream_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


@dataclass(frozen=True)
class BlockedWriter:
    """A gateway backend waiting for a lock, and the tables its transaction has written."""

    pid: int
    written: frozenset[str]


class DirectConnection:
    """The test's own connection to the test database, bypassing the proxy."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, database_url: str) -> AsyncIterator["DirectConnection"]:
        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        connection = await asyncpg.connect(dsn)
        try:
            yield cls(connection)
        finally:
            await connection.close()

    async def fetchval(self, query: str, *args: object) -> object:
        return await self._connection.fetchval(query, *args)

    async def count(self, table: str, where: str = "TRUE", *args: object) -> int:
        """Rows of ``table`` matching ``where`` (both written by the test, never by input)."""
        query = f"SELECT count(*) FROM {table} WHERE {where}"  # noqa: S608
        return int(await self._connection.fetchval(query, *args))

    @contextlib.asynccontextmanager
    async def holding_audit_appends(self) -> AsyncIterator[None]:
        """Every audit append waits while this block runs (reads do not)."""
        transaction = self._connection.transaction()
        await transaction.start()
        try:
            await self._connection.execute("LOCK TABLE audit_log_entries IN SHARE MODE")
            yield
        finally:
            await transaction.rollback()

    async def blocked_writer(self, *, within: float = 30.0) -> BlockedWriter:
        """The one backend of this database waiting for a lock (polled with a deadline)."""
        deadline = time.monotonic() + within
        while True:
            pids = await self._connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if len(pids) == 1:
                pid = int(pids[0]["pid"])
                rows = await self._connection.fetch(
                    "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE l.pid = $1 AND l.granted AND l.mode = 'RowExclusiveLock' "
                    "AND c.relkind = 'r'",
                    pid,
                )
                written = frozenset(str(row["relname"]) for row in rows)
                return BlockedWriter(pid, written)
            assert len(pids) <= 1, f"several backends wait for a lock: {pids}"
            if time.monotonic() > deadline:
                raise AssertionError("no gateway backend came to wait for the lock")
            await asyncio.sleep(0.02)

    async def wait_gone(self, pid: int, *, within: float = 30.0) -> None:
        """Wait until backend ``pid`` has ended (its transaction rolled back)."""
        deadline = time.monotonic() + within
        while await self._connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"backend {pid} outlived its lost client")
            await asyncio.sleep(0.02)
