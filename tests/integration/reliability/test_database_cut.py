"""Fault matrix: the PostgreSQL connection cut mid-transaction (docs/reliability.md).

The gateway reaches PostgreSQL through a TCP proxy the test cuts (``stop()`` resets every
open connection and refuses new ones); the test watches and holds locks on a direct connection
of its own (``tests/support/database_cut.py``). Each cell cuts at a chosen moment, asserts
what the client got (503 ``DATABASE_UNAVAILABLE``, SPEC §4) and that nothing half-done
committed, restarts the proxy and asserts the contract — the pool reconnects and the gateway
serves again.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.conftest import gateway_settings
from tests.support.backups import leftover_under_prefix, objects_left, stored_objects
from tests.support.clock import FixedClock
from tests.support.database_cut import DirectConnection, through_proxy, upstream_of
from tests.support.factories import create_api_key, headers
from tests.support.fault_contract import assert_fault_contract, marked_payload
from tests.support.restores import backup_of, request_restore
from tests.support.tcp_proxy import TcpProxy

# The cut is a TCP connection to a database server: PostgreSQL's.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy(*upstream_of(database_url)).start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def settings(
    database_url: str, proxy: TcpProxy, tmp_path: Path, key_store: FileKeyStore
) -> Settings:
    """The gateway's settings, its database reached through the proxy."""
    return gateway_settings(through_proxy(database_url, proxy), tmp_path, key_store)


@pytest.fixture
async def direct(database_url: str) -> AsyncIterator[DirectConnection]:
    async with DirectConnection.open(database_url) as connection:
        yield connection


@pytest.fixture
async def keys(services: Services, bootstrap_key: IssuedApiKey) -> tuple[IssuedApiKey, ...]:
    return await create_api_key(services, Role.OPERATOR), await create_api_key(services, Role.ADMIN)


@dataclass
class HeldUpload:
    """An upload whose body stops halfway until the test releases it."""

    response: "asyncio.Task[httpx.Response]"
    release: asyncio.Event
    payload: bytes


def start_held_upload(client: httpx.AsyncClient, operator: IssuedApiKey) -> HeldUpload:
    payload = marked_payload(256 * 1024)
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield payload[: len(payload) // 2]
        await release.wait()
        yield payload[len(payload) // 2 :]

    response = asyncio.create_task(
        client.post(
            "/backups",
            params={"classification": "INTERNAL", "source_system": "db-1", "filename": "x"},
            headers={**headers(operator), "Content-Type": "application/octet-stream"},
            content=body(),
        )
    )
    return HeldUpload(response, release, payload)


async def streaming_backup(direct: DirectConnection, settings: Settings) -> UUID:
    """The id of the one PROCESSING backup, once its body streams into the store (its start
    transaction, and the durability wait after that commit, are over)."""
    for _ in range(600):
        found = await direct.fetchval("SELECT id FROM backup_metadata WHERE status = 'PROCESSING'")
        if found is not None:
            backup_id = UUID(str(found))
            if leftover_under_prefix(settings.resolved_storage_path, backup_id):
                return backup_id
        await asyncio.sleep(0.05)
    raise AssertionError("no PROCESSING backup came to stream")


def assert_database_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "DATABASE_UNAVAILABLE"
    assert error["request_id"]


async def assert_left_processing(direct: DirectConnection, backup_id: UUID) -> None:
    """Still PROCESSING with only its first transition and its start entries: nothing of the
    completion committed."""
    status = await direct.fetchval("SELECT status FROM backup_metadata WHERE id = $1", backup_id)
    assert status == "PROCESSING"
    transitions = "backup_status_transitions", "backup_id = $1"
    assert await direct.count(*transitions, backup_id) == 1
    completed = (
        "audit_log_entries",
        "resource = $1 AND action IN ('BACKUP_STORED', 'BACKUP_COMPLETE')",
    )
    assert await direct.count(*completed, f"backup:{backup_id}") == 0


async def assert_swept(
    services: Services, settings: Settings, clock: FixedClock, backup_id: UUID
) -> None:
    """Once the database is back, the lease sweep fails the record and removes its objects."""
    clock.advance(seconds=settings.backup_lease_seconds + 1)
    report = await services.backup_recovery.recover()
    assert report.interrupted == [backup_id]
    assert backup_id in report.cleaned
    async with services.db.transaction(write=False) as tx:
        record = await tx.backups.get_or_none(backup_id)
    assert record is not None
    assert (record.status, record.failure_reason) == ("FAILED", "INTERRUPTED")
    assert await objects_left(services, backup_id) == []


async def test_a_cut_while_the_body_streams_fails_the_completion_and_the_sweep_recovers(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    keys: tuple[IssuedApiKey, IssuedApiKey],
    proxy: TcpProxy,
    direct: DirectConnection,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    operator, admin = keys
    upload = start_held_upload(client, operator)
    backup_id = await streaming_backup(direct, settings)

    await proxy.stop()
    upload.release.set()  # the body ends; the completing transaction finds no database
    response = await upload.response

    assert_database_unavailable(response)
    await assert_left_processing(direct, backup_id)
    # Stored, but never ACTIVE: the failure could not be recorded either, so the objects wait
    # for the sweep.
    assert await stored_objects(services.object_store, backup_id) == {
        "data.enc": True,
        "dek.wrapped": True,
    }

    await proxy.start()
    await assert_swept(services, settings, clock, backup_id)
    await assert_fault_contract(
        services,
        payloads=[upload.payload],
        roots=[tmp_path],
        http=client,
        operator=operator,
        admin=admin,
    )


async def test_a_cut_inside_the_completing_transaction_commits_neither_active_nor_its_entries(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    keys: tuple[IssuedApiKey, IssuedApiKey],
    proxy: TcpProxy,
    direct: DirectConnection,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    operator, admin = keys
    upload = start_held_upload(client, operator)
    backup_id = await streaming_backup(direct, settings)

    async with direct.holding_audit_appends():
        upload.release.set()
        writer = await direct.blocked_writer()
        # ACTIVE and its transition are written, BACKUP_STORED waits: cut between them.
        assert {"backup_metadata", "backup_status_transitions"} <= writer.written
        await proxy.stop()
        response = await upload.response
    await direct.wait_gone(writer.pid)

    assert_database_unavailable(response)
    await assert_left_processing(direct, backup_id)
    await proxy.start()
    await assert_swept(services, settings, clock, backup_id)
    await assert_fault_contract(
        services,
        payloads=[upload.payload],
        roots=[tmp_path],
        http=client,
        operator=operator,
        admin=admin,
    )


@dataclass(frozen=True)
class UseCase:
    """A state-changing request, and the table its state lands in."""

    send: Callable[
        [httpx.AsyncClient, IssuedApiKey, IssuedApiKey, str], Coroutine[None, None, httpx.Response]
    ]
    table: str


async def _restore(
    client: httpx.AsyncClient, _super: IssuedApiKey, admin: IssuedApiKey, backup_id: str
) -> httpx.Response:
    return await request_restore(client, admin, backup_id)


async def _create_key(
    client: httpx.AsyncClient, super_admin: IssuedApiKey, _admin: IssuedApiKey, _backup: str
) -> httpx.Response:
    return await client.post(
        "/admin/api-keys",
        headers=headers(super_admin),
        json={"role": "auditor", "description": "created while the database goes away"},
    )


USE_CASES = {
    "restore-request": UseCase(_restore, "restore_requests"),
    "api-key-creation": UseCase(_create_key, "api_keys"),
}


@pytest.mark.parametrize("use_case", list(USE_CASES))
async def test_a_cut_between_a_state_change_and_its_audit_entry_commits_neither(
    use_case: str,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    keys: tuple[IssuedApiKey, IssuedApiKey],
    proxy: TcpProxy,
    direct: DirectConnection,
    tmp_path: Path,
) -> None:
    operator, admin = keys
    case = USE_CASES[use_case]
    payload = marked_payload(64 * 1024)
    backup_id = await backup_of(client, operator, payload)
    rows_before = await direct.count(case.table)
    entries_before = await direct.count("audit_log_entries")

    async with direct.holding_audit_appends():
        sent = asyncio.create_task(case.send(client, bootstrap_key, admin, backup_id))
        writer = await direct.blocked_writer()
        assert case.table in writer.written  # its state is written; its entry waits
        await proxy.stop()
        response = await sent
    await direct.wait_gone(writer.pid)

    assert_database_unavailable(response)
    assert await direct.count(case.table) == rows_before
    assert await direct.count("audit_log_entries") == entries_before
    await proxy.start()
    await assert_fault_contract(
        services, payloads=[payload], roots=[tmp_path], http=client, operator=operator, admin=admin
    )
