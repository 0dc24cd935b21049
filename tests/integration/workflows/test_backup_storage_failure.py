"""The object store fails in the middle of an upload: 503 STORAGE_UNAVAILABLE, the record
FAILED with a BACKUP_FAILED entry, no partial object left behind, and the audit chain intact."""

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.infrastructure.storage.layout import backup_prefix
from ssbg.services.container import Services
from tests.conftest import s3_settings
from tests.support.audit import assert_chain_valid, entries_for
from tests.support.backups import count_records, local_files_under, objects_left, only_record
from tests.support.factories import create_api_key, headers
from tests.support.processes import MotoServer
from tests.support.tcp_proxy import TcpProxy

MIB = 1024 * 1024
pytestmark = pytest.mark.parametrize("storage_backend", ["local", "s3"])


@pytest.fixture
def private_moto(tmp_path: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
async def s3_proxy(
    storage_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[TcpProxy | None]:
    if storage_backend != "s3":
        yield None
        return
    moto: MotoServer = request.getfixturevalue("private_moto")
    proxy = await TcpProxy("127.0.0.1", moto.port).start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def settings_overrides(s3_proxy: TcpProxy | None) -> dict[str, object]:
    return s3_settings(s3_proxy.url) if s3_proxy is not None else {}


async def _break_the_store(services: Services, proxy: TcpProxy | None) -> None:
    if proxy is not None:
        await proxy.stop()
        return
    record = await only_record(services)
    directory = services.settings.resolved_storage_path / backup_prefix(record.id).rstrip("/")
    shutil.rmtree(directory)
    directory.write_bytes(b"a file where the backup's directory was")


async def _repair_the_store(services: Services, proxy: TcpProxy | None) -> None:
    if proxy is not None:
        await proxy.start()
        return
    record = await only_record(services)
    (services.settings.resolved_storage_path / backup_prefix(record.id).rstrip("/")).unlink()


async def test_a_store_failure_mid_stream_fails_the_backup_and_leaves_nothing(
    client: httpx.AsyncClient, services: Services, s3_proxy: TcpProxy | None
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    await services.object_store.check_writable()  # the store works before the upload

    async def body() -> AsyncIterator[bytes]:
        yield os.urandom(256 * 1024)
        # The record is PROCESSING and data.enc is being written when the store breaks.
        await _break_the_store(services, s3_proxy)
        for _ in range(12):
            yield os.urandom(MIB)

    response = await client.post(
        "/backups?classification=INTERNAL&source_system=db-1",
        headers={**headers(operator), "Content-Type": "application/octet-stream"},
        content=body(),
    )

    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
    record = await only_record(services)
    assert (record.status, record.failure_reason) == ("FAILED", "STORAGE_UNAVAILABLE")
    assert record.completed_at is None
    entries = await entries_for(services.db, f"backup:{record.id}")
    assert [e.action for e in entries] == [
        "POLICY_CHECK_ALLOW",
        "BACKUP_START",
        "KEY_WRAP",
        "BACKUP_FAILED",
    ]
    assert entries[-1].result == "FAILED"
    assert entries[-1].details["reason"] == "STORAGE_UNAVAILABLE"
    status = await client.get(f"/backups/{record.id}/status", headers=headers(operator))
    assert status.json()["data"]["transitions"][-1]["to_status"] == "FAILED"
    assert status.json()["data"]["transitions"][-1]["reason"] == "STORAGE_UNAVAILABLE"

    # Once the store is back, whatever an unreachable store kept is removed by the sweep.
    await _repair_the_store(services, s3_proxy)
    await services.backup_recovery.recover()
    record = await only_record(services)
    assert not record.cleanup_pending
    assert await count_records(services) == 1
    assert await objects_left(services, record.id) == []
    assert local_files_under(services.settings.resolved_storage_path / "backups") == []
    await assert_chain_valid(services.db)
