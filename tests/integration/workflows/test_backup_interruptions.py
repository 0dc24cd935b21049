"""Uploads that end badly: the client goes away, or the gateway simply stops renewing its
lease. Nothing is left PROCESSING, nothing partial stays stored. (A gateway killed with SIGKILL
mid-upload is a cell of the fault matrix: tests/integration/reliability/test_kill9.py.)"""

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID, uuid4

import httpx
import pytest
import uvicorn

from ssbg.api.app import create_app
from ssbg.domain.enums import Role
from ssbg.infrastructure.db.models import BackupMetadata, BackupStatusTransition
from ssbg.infrastructure.storage.layout import backup_prefix, data_key, wrapped_dek_key
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.support.audit import assert_chain_valid, entries_for
from tests.support.backups import get_record, leftover_under_prefix, objects_left, only_record
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.processes import wait_until

MIB = 1024 * 1024


@pytest.fixture
async def live_server(services: Services, bootstrap_key: IssuedApiKey) -> AsyncIterator[int]:
    """The app served by a real uvicorn in this event loop, on a free loopback port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = uvicorn.Server(
        uvicorn.Config(create_app(services=services), lifespan="off", log_config=None)
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    await wait_until(lambda: _started(server), within=30)
    yield int(listener.getsockname()[1])
    server.should_exit = True
    await task
    listener.close()


async def _started(server: uvicorn.Server) -> bool:
    return bool(server.started)


async def _processing_record(services: Services) -> BackupMetadata | None:
    async with services.db.transaction(write=False) as tx:
        from sqlalchemy import select

        rows = (await tx.session.execute(select(BackupMetadata))).scalars().all()
    return rows[0] if rows and rows[0].status == "PROCESSING" else None


@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_a_client_that_disconnects_mid_upload_leaves_a_failed_record(
    live_server: int, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    _reader, writer = await asyncio.open_connection("127.0.0.1", live_server)
    writer.write(
        (
            "POST /api/v1/backups?classification=INTERNAL&source_system=db-1 HTTP/1.1\r\n"
            "Host: ssbg.test\r\n"
            f"X-API-Key: {operator.api_key}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Content-Length: {8 * MIB}\r\n\r\n"
        ).encode()
    )
    writer.write(os.urandom(2 * MIB))
    await writer.drain()

    await wait_until(lambda: _has_processing(services))
    writer.transport.abort()  # gone, 6 MiB short

    async def failed() -> bool:
        record = await only_record(services)
        return record.status == "FAILED"

    await wait_until(failed)
    record = await only_record(services)
    assert record.failure_reason == "CLIENT_DISCONNECTED"
    entries = await entries_for(services.db, f"backup:{record.id}")
    assert entries[-1].action == "BACKUP_FAILED"
    assert entries[-1].details["reason"] == "CLIENT_DISCONNECTED"
    await wait_until(lambda: _cleaned(services, record.id))
    assert await objects_left(services, record.id) == []
    await assert_chain_valid(services.db)


async def _has_processing(services: Services) -> bool:
    return await _processing_record(services) is not None


async def _cleaned(services: Services, backup_id: UUID) -> bool:
    record = await get_record(services, backup_id)
    return record is not None and not record.cleanup_pending


# -- recovery from a dead process, with the clock under the test's control -----------------


async def _leave_a_dead_upload(
    services: Services, owner: IssuedApiKey, clock: FixedClock, *, lease_left: timedelta
) -> UUID:
    """What a process killed mid-upload leaves: a PROCESSING record and a partial object."""
    backup_id = uuid4()
    now = clock.now()
    async with services.db.transaction(write=True) as tx:
        await tx.backups.insert(
            BackupMetadata(
                id=backup_id,
                status="PROCESSING",
                classification="INTERNAL",
                source_system="db-1",
                content_type="application/octet-stream",
                key_version="P-001",
                format_version=1,
                segment_size=MIB,
                storage_backend="local",
                storage_ref=data_key(backup_id),
                wrapped_dek_ref=wrapped_dek_key(backup_id),
                created_by=owner.record.id,
                created_at=now,
                updated_at=now,
                idempotency_key=f"nightly-{backup_id}",
                lease_expires_at=now + lease_left,
                cleanup_pending=False,
            ),
            BackupStatusTransition(
                id=uuid4(),
                backup_id=backup_id,
                sequence=1,
                from_status=None,
                to_status="PROCESSING",
                at=now,
            ),
        )
    directory = services.settings.resolved_storage_path / backup_prefix(backup_id).rstrip("/")
    directory.mkdir(parents=True)
    (directory / ".data.enc.0123456789abcdef.partial").write_bytes(os.urandom(1000))
    return backup_id


@pytest.mark.both_backends
async def test_recovery_fails_a_dead_upload_once_its_lease_lapsed(
    services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    dead = await _leave_a_dead_upload(services, operator, clock, lease_left=timedelta(seconds=60))

    early = await services.backup_recovery.recover()
    clock.advance(seconds=61)
    late = await services.backup_recovery.recover()
    again = await services.backup_recovery.recover()

    assert early.interrupted == []
    assert late.interrupted == [dead]
    assert again.interrupted == []
    record = await get_record(services, dead)
    assert record is not None
    assert (record.status, record.failure_reason) == ("FAILED", "INTERRUPTED")
    assert record.idempotency_key is None  # a retry may use the key again
    assert not record.cleanup_pending
    assert leftover_under_prefix(services.settings.resolved_storage_path, dead) == []
    entries = await entries_for(services.db, f"backup:{dead}")
    assert [(e.action, e.actor_id, e.details["reason"]) for e in entries] == [
        ("BACKUP_FAILED", None, "INTERRUPTED")
    ]
    await assert_chain_valid(services.db)


@pytest.mark.both_backends
async def test_replicas_sweeping_together_fail_each_dead_upload_exactly_once(
    services: Services, settings: Settings, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    dead = [
        await _leave_a_dead_upload(services, operator, clock, lease_left=timedelta(seconds=1))
        for _ in range(5)
    ]
    clock.advance(seconds=5)
    replicas = [
        build_services(settings, clock=clock, key_store=services.key_store) for _ in range(3)
    ]
    try:
        reports = await asyncio.gather(*(r.backup_recovery.recover() for r in replicas))
    finally:
        for replica in replicas:
            await replica.close()

    assert sorted(i for report in reports for i in report.interrupted) == sorted(dead)
    for backup_id in dead:
        entries = await entries_for(services.db, f"backup:{backup_id}")
        assert [e.action for e in entries] == ["BACKUP_FAILED"]
    await assert_chain_valid(services.db)


@pytest.mark.both_backends
@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_an_upload_failed_by_another_replica_after_its_lease_lapsed_is_a_503(
    live_server: int, services: Services, clock: FixedClock
) -> None:
    """This replica could not renew the lease in time (a stalled process, a slow database) and
    another one's recovery failed the upload: the client is told to send it again (503, not
    an internal error), and nothing of it is left in the store."""
    operator = await create_api_key(services, Role.OPERATOR)
    more = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield os.urandom(2 * MIB)
        await more.wait()
        yield os.urandom(MIB)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live_server}/api/v1") as http:
        upload = asyncio.create_task(
            http.post(
                "/backups",
                params={"classification": "INTERNAL", "source_system": "db-1"},
                headers={**headers(operator), "Content-Type": "application/octet-stream"},
                content=body(),
                timeout=60,
            )
        )
        await wait_until(lambda: _has_processing(services))
        clock.advance(seconds=services.settings.backup_lease_seconds + 1)
        swept = await services.backup_recovery.recover()
        more.set()
        response = await upload

    record = await only_record(services)
    assert swept.interrupted == [record.id]
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert (record.status, record.failure_reason) == ("FAILED", "INTERRUPTED")
    await wait_until(lambda: _cleaned(services, record.id))
    assert await objects_left(services, record.id) == []
    assert leftover_under_prefix(services.settings.resolved_storage_path, record.id) == []
    await assert_chain_valid(services.db)
