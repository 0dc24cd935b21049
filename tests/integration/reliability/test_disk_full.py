"""Fault matrix, "disk full" (docs/reliability.md): the object store's disk, then the database's
disk, fills up under a real gateway; the client gets a clear 503, nothing is half stored, and
once the space is freed the gateway serves again (``assert_fault_contract``).

The disks are small tmpfs mounts (``tests/support/small_disk.py``) filled by a filler file.
A test that asks for ``object_disk`` gets its object store there; one that asks for
``database_disk`` gets its database there (SQLite: the database file, so also its WAL; on
PostgreSQL: a tablespace holding SSBG's tables and indexes).
"""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from ssbg.domain.enums import Role
from ssbg.infrastructure.db.models import ApiKey, BackupMetadata, RestoreRequest
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.audit import assert_chain_valid, entries_for, head_sequence
from tests.support.backups import (
    count_records,
    get_record,
    local_files_under,
    only_record,
    stored_objects,
)
from tests.support.clock import FixedClock
from tests.support.disk_databases import (
    empty_sqlite_wal,
    postgres_tables_on,
    sqlite_database_on,
)
from tests.support.factories import create_api_key, headers
from tests.support.fault_contract import assert_fault_contract, marked_payload
from tests.support.restores import backup_of, request_restore
from tests.support.small_disk import SmallDisk, mount_point, small_disk

KIB = 1024
MIB = 1024 * KIB
OBJECT_DISK_SIZE = 8 * MIB
DATABASE_DISK_SIZE = 8 * MIB


@pytest.fixture
def object_disk() -> Iterator[SmallDisk]:
    with mount_point() as path, small_disk(path, OBJECT_DISK_SIZE) as disk:
        yield disk


@pytest.fixture
def database_disk(backend: str) -> Iterator[SmallDisk]:
    owner = "postgres" if backend == "postgres" else None  # PostgreSQL writes its tablespace
    with mount_point() as path, small_disk(path, DATABASE_DISK_SIZE, owner=owner) as disk:
        yield disk


@pytest.fixture
async def database_url(
    database_url: str, backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """conftest's fresh database; on ``database_disk`` when the test asks for it."""
    if "database_disk" not in request.fixturenames:
        yield database_url
        return
    disk: SmallDisk = request.getfixturevalue("database_disk")
    if backend == "sqlite":
        yield sqlite_database_on(disk, database_url)
        return
    async with postgres_tables_on(disk, database_url) as url:
        yield url


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """conftest's settings; with the object store on ``object_disk`` when the test asks for it
    (``storage_path`` is not one of the fields ``settings_overrides`` can change)."""
    if "object_disk" not in request.fixturenames:
        return settings
    disk: SmallDisk = request.getfixturevalue("object_disk")
    return Settings.model_validate({**settings.model_dump(), "storage_path": disk.path / "objects"})


def assert_error(response: httpx.Response, status: int, code: str, *hidden: str) -> None:
    """A SPEC §4 error with ``status`` and ``code`` that names none of ``hidden`` (paths)."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert error["request_id"] == response.headers["X-Request-ID"]
    for secret in ("No space", "Errno", "Traceback", *hidden):
        assert secret not in response.text


async def only_record_but(services: Services, kept_id: str) -> BackupMetadata:
    async with services.db.transaction(write=False) as tx:
        rows = (await tx.session.execute(select(BackupMetadata))).scalars().all()
    others = [row for row in rows if str(row.id) != kept_id]
    assert len(others) == 1, others
    return others[0]


async def _chunks(payload: bytes, size: int = 256 * KIB) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


async def _post_stream(
    client: httpx.AsyncClient, operator: IssuedApiKey, body: AsyncIterator[bytes]
) -> httpx.Response:
    return await client.post(
        "/backups",
        params={"classification": "INTERNAL", "source_system": "disk-full", "filename": "x"},
        headers={**headers(operator), "Content-Type": "application/octet-stream"},
        content=body,
    )


@pytest.mark.both_backends
async def test_object_disk_full_mid_upload_fails_the_backup_and_leaves_no_object(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    object_disk: SmallDisk,
    tmp_path: Path,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    object_disk.fill(leave=1 * MIB)
    payload = marked_payload(3 * MIB)  # streamed: the disk fills up in the middle of data.enc

    response = await _post_stream(client, operator, _chunks(payload))

    assert_error(response, 503, "STORAGE_UNAVAILABLE", str(object_disk.path))
    record = await only_record(services)
    assert (record.status, record.failure_reason) == ("FAILED", "STORAGE_UNAVAILABLE")
    entries = await entries_for(services.db, f"backup:{record.id}")
    assert entries[-1].action == "BACKUP_FAILED"
    assert entries[-1].details["reason"] == "STORAGE_UNAVAILABLE"
    store = services.settings.resolved_storage_path
    assert local_files_under(store / "backups") == []  # the partial data.enc is gone
    assert object_disk.available() >= 1 * MIB - 64 * KIB  # and its space given back
    await assert_chain_valid(services.db)

    object_disk.fill(leave=0)
    not_ready = await client.get("/health/ready")
    assert_error(not_ready, 503, "STORAGE_UNAVAILABLE", str(object_disk.path))
    assert not_ready.json()["error"]["details"]["failed_checks"] == ["storage"]

    object_disk.free()
    assert (await client.get("/health/ready")).status_code == 200
    await assert_fault_contract(
        services,
        payloads=[payload],
        roots=[tmp_path, object_disk.path],
        http=client,
        operator=operator,
        admin=admin,
    )


async def _count(services: Services, model: type[ApiKey] | type[RestoreRequest]) -> int:
    async with services.db.transaction(write=False) as tx:
        return int((await tx.session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_sqlite_disk_full_fails_writes_closed_and_serves_again_once_freed(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    database_disk: SmallDisk,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    kept = marked_payload(64 * KIB)
    kept_id = await backup_of(client, operator, kept)
    assert (await client.get("/me", headers=headers(admin))).status_code == 200
    database = services.settings.resolved_database_url
    payload = marked_payload(1 * MIB)

    async def body() -> AsyncIterator[bytes]:
        yield payload[: 256 * KIB]
        # The record is PROCESSING (committed) and data.enc is being written: now the
        # database's disk fills up, so the completion cannot be committed.
        empty_sqlite_wal(database)
        database_disk.fill(leave=0)
        async for chunk in _chunks(payload[256 * KIB :]):
            yield chunk

    response = await _post_stream(client, operator, body())

    hidden = str(database_disk.path)
    assert_error(response, 503, "DATABASE_UNAVAILABLE", hidden)
    interrupted = await only_record_but(services, kept_id)
    # Not even FAILED could be written: the record stays PROCESSING under its lease (never
    # ACTIVE), its objects where the stream left them, for the recovery sweep to remove.
    assert interrupted.status == "PROCESSING"
    assert await stored_objects(services.object_store, interrupted.id) == {
        "data.enc": True,
        "dek.wrapped": True,
    }

    not_ready = await client.get("/health/ready")
    assert_error(not_ready, 503, "DATABASE_UNAVAILABLE", hidden)
    assert not_ready.json()["error"]["details"]["failed_checks"] == ["database"]

    keys_before = await _count(services, ApiKey)
    created = await client.post(
        "/admin/api-keys",
        headers=headers(bootstrap_key),
        json={"role": "operator", "description": "made while the disk is full"},
    )
    assert_error(created, 503, "DATABASE_UNAVAILABLE", hidden)
    assert await _count(services, ApiKey) == keys_before
    restore = await request_restore(client, admin, kept_id)
    assert_error(restore, 503, "DATABASE_UNAVAILABLE", hidden)
    assert await _count(services, RestoreRequest) == 0
    refused = await _post_stream(client, operator, _chunks(marked_payload(64 * KIB)))
    assert_error(refused, 503, "DATABASE_UNAVAILABLE", hidden)
    assert await count_records(services) == 2  # not even a PROCESSING record for it
    # Reads need no space: the gateway still answers them.
    read = await client.get(f"/backups/{kept_id}", headers=headers(admin))
    assert read.status_code == 200, read.text
    await assert_chain_valid(services.db)

    database_disk.free()
    assert (await client.get("/health/ready")).status_code == 200
    clock.advance(seconds=services.settings.backup_lease_seconds + 1)
    report = await services.backup_recovery.recover()
    assert report.interrupted == report.cleaned == [interrupted.id]
    recovered = await get_record(services, interrupted.id)
    assert recovered is not None
    assert (recovered.status, recovered.failure_reason) == ("FAILED", "INTERRUPTED")
    entries = await entries_for(services.db, f"backup:{interrupted.id}")
    assert [entries[-1].action, entries[-1].details["reason"]] == ["BACKUP_FAILED", "INTERRUPTED"]
    assert await stored_objects(services.object_store, interrupted.id) == {
        "data.enc": False,
        "dek.wrapped": False,
    }
    await assert_fault_contract(
        services,
        payloads=[kept, payload],
        roots=[tmp_path, database_disk.path],
        http=client,
        operator=operator,
        admin=admin,
    )


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_tablespace_full_fails_writes_closed_and_serves_again_once_freed(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    database_disk: SmallDisk,
    tmp_path: Path,
) -> None:
    # Only a write that needs a new page fails on a full tablespace: one that fits in a page
    # the table already has succeeds, truly. So each write below is the first row of its
    # table (backup_metadata, then restore_requests), which has no page yet.
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    assert (await client.get("/me", headers=headers(admin))).status_code == 200
    assert (await client.get("/me", headers=headers(operator))).status_code == 200
    hidden = str(database_disk.path)
    refused_payload = marked_payload(64 * KIB)
    head = await head_sequence(services.db)

    database_disk.fill(leave=0)
    refused = await _post_stream(client, operator, _chunks(refused_payload))

    assert_error(refused, 503, "DATABASE_UNAVAILABLE", hidden, "pg_tblspc")
    assert await count_records(services) == 0  # not even a PROCESSING record
    assert local_files_under(services.settings.resolved_storage_path / "backups") == []
    assert await head_sequence(services.db) == head  # the start's entries rolled back with it
    database_disk.free()

    kept = marked_payload(64 * KIB)
    kept_id = await backup_of(client, operator, kept)
    database_disk.fill(leave=0)
    restore = await request_restore(client, admin, kept_id)

    assert_error(restore, 503, "DATABASE_UNAVAILABLE", hidden, "pg_tblspc")
    assert await _count(services, RestoreRequest) == 0
    record = await get_record(services, kept_id)
    assert record is not None
    assert record.status == "ACTIVE"
    await assert_chain_valid(services.db)

    database_disk.free()
    assert (await client.get("/health/ready")).status_code == 200
    await assert_fault_contract(
        services,
        payloads=[kept, refused_payload],
        roots=[tmp_path, database_disk.path],
        http=client,
        operator=operator,
        admin=admin,
    )
