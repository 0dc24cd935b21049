"""``POST /backups/{id}/verify`` when the object store does not answer: 503
``STORAGE_UNAVAILABLE``, the backup untouched (still ACTIVE, nothing recorded as verified) and
the attempt audited as ``BACKUP_VERIFY`` ``ERROR``; on both stores (S3 behind a proxy that is
stopped; the local store with a file where the backup's folder was)."""

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from ssbg.domain.enums import BackupStatus, Role
from ssbg.infrastructure.storage.layout import backup_prefix
from ssbg.services.container import Services
from ssbg.services.verification.jobs import PAUSE_LEASES
from tests.conftest import s3_settings
from tests.support.audit import audit_entries
from tests.support.backups import random_payload
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.processes import MotoServer
from tests.support.restores import backup_of
from tests.support.tcp_proxy import TcpProxy
from tests.support.verification import record_of, verify

MIB = 1024 * 1024


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


@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_an_unreachable_store_is_503_and_nothing_is_recorded_as_verified(
    client: httpx.AsyncClient, services: Services, s3_proxy: TcpProxy | None
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, random_payload(MIB))
    if s3_proxy is not None:
        await s3_proxy.stop()
    else:
        directory = services.settings.resolved_storage_path / backup_prefix(
            (await record_of(services, backup_id)).id
        ).rstrip("/")
        shutil.rmtree(directory)
        directory.write_bytes(b"a file where the backup's directory was")

    response = await verify(client, admin, backup_id)

    assert (response.status_code, response.json()["error"]["code"]) == (
        503,
        "STORAGE_UNAVAILABLE",
    )
    record = await record_of(services, backup_id)
    assert (record.status, record.last_verified_at, record.last_verification_result) == (
        BackupStatus.ACTIVE,
        None,
        None,
    )
    [entry] = await audit_entries(services.db, "BACKUP_VERIFY")
    assert (entry.result, entry.details["code"]) == ("ERROR", "STORAGE_UNAVAILABLE")


@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_a_verify_job_stopped_by_the_store_pauses_then_resumes(
    client: httpx.AsyncClient,
    services: Services,
    clock: FixedClock,
    s3_proxy: TcpProxy | None,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    ids = []
    for _ in range(3):  # a minute apart: the job takes them in this order
        ids.append(await backup_of(client, admin, random_payload(MIB)))
        clock.advance(minutes=1)
    first = services.settings.resolved_storage_path / backup_prefix(
        (await record_of(services, ids[0])).id
    ).rstrip("/")
    aside = first.with_name(first.name + ".aside")
    if s3_proxy is not None:
        await s3_proxy.stop()
    else:
        first.rename(aside)
        first.write_bytes(b"a file where the backup's directory was")
    started = await client.post("/admin/verify", headers=headers(admin))
    job_id = UUID(started.json()["data"]["job_id"])
    jobs = services.verification.jobs

    stopped = await jobs.run(job_id)
    view = (await client.get(f"/admin/verify/{job_id}", headers=headers(admin))).json()["data"]
    while_paused = await jobs.sweep_once()
    if s3_proxy is not None:
        await s3_proxy.start()
    else:
        first.unlink()
        aside.rename(first)
    clock.advance(seconds=services.settings.backup_lease_seconds * PAUSE_LEASES + 1)
    resumed = await jobs.sweep_once()
    done = (await client.get(f"/admin/verify/{job_id}", headers=headers(admin))).json()["data"]

    assert stopped is None
    assert (view["status"], view["verified"]) == ("RUNNING", 0)
    assert while_paused == []
    assert resumed == [job_id]
    assert (done["status"], done["total"], done["verified"], done["failed"]) == (
        "COMPLETED",
        3,
        3,
        0,
    )
    errors = [e for e in await audit_entries(services.db, "BACKUP_VERIFY") if e.result == "ERROR"]
    assert [(e.resource, e.details["job_id"]) for e in errors] == [
        (f"backup:{ids[0]}", str(job_id))
    ]
