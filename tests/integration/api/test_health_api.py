import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from ssbg.domain.enums import Role
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.factories import create_api_key, headers


async def test_health_answers_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["X-Request-ID"]


@pytest.mark.both_backends
async def test_ready_when_database_storage_and_keys_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "storage": "ok", "key_store": "ok"}


async def test_not_ready_names_the_storage_check_when_the_store_cannot_be_written(
    client: httpx.AsyncClient, services: Services
) -> None:
    root = services.settings.resolved_storage_path
    root.parent.mkdir(parents=True, exist_ok=True)
    if root.exists():
        for child in root.iterdir():
            if child.is_dir():
                for grandchild in child.iterdir():
                    grandchild.unlink()
                child.rmdir()
            else:
                child.unlink()
        root.rmdir()
    root.write_bytes(b"a file where the object store directory should be")

    response = await client.get("/health/ready")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "STORAGE_UNAVAILABLE"
    assert error["details"]["failed_checks"] == ["storage"]


@pytest.mark.both_backends
async def test_not_ready_names_the_database_check_when_the_database_is_gone(
    client: httpx.AsyncClient, services: Services
) -> None:
    await services.db.engine.dispose()
    services.db.engine.pool._creator = _refuse  # type: ignore[attr-defined]

    response = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert "database" in response.json()["error"]["details"]["failed_checks"]


def _refuse(*_args: object) -> object:
    raise ConnectionRefusedError("database down")


async def test_detailed_health_is_for_admins(client: httpx.AsyncClient, services: Services) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    auditor = await create_api_key(services, Role.AUDITOR)

    allowed = await client.get("/health/detailed", headers=headers(admin))
    denied = await client.get("/health/detailed", headers=headers(auditor))

    assert allowed.status_code == 200
    data = allowed.json()["data"]
    assert data["active_key_version"] == "P-001"
    assert data["incident_level"] == 0
    assert data["audit_head"]["sequence"] >= 1
    assert set(data["checks"]) == {"database", "storage", "key_store"}
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "FORBIDDEN_ROLE"


def _refuse_writes_on_new_connections(services: Services) -> None:
    """Every new connection may read but not write: SQLite's ``query_only`` (what an immutable
    or read-only database file gives), PostgreSQL's read-only transactions (a read-only
    database or a standby). Works as root too, where file modes stop nobody."""
    statement = (
        "PRAGMA query_only = ON"
        if services.db.dialect == "sqlite"
        else "SET default_transaction_read_only = on"
    )

    @event.listens_for(services.db.engine.sync_engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(statement)
        cursor.close()
        dbapi_connection.commit()  # the asyncpg adapter ran the SET in a transaction


@pytest.mark.both_backends
async def test_not_ready_names_the_database_check_when_the_database_cannot_be_written(
    client: httpx.AsyncClient, services: Services
) -> None:
    _refuse_writes_on_new_connections(services)
    await services.db.engine.dispose()

    response = await client.get("/health/ready")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "DATABASE_UNAVAILABLE"
    assert error["details"]["failed_checks"] == ["database"]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_held_system_state_lock_does_not_make_a_busy_gateway_unready(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Restore admission and incident changes lock the system_state row; the write probe
    must not queue behind them (a probe that waited made loaded replicas drop out of their
    load balancer), yet it is still a write a read-only database refuses (test above)."""
    async with services.db.engine.connect() as holder:
        await holder.execute(text("SELECT id FROM system_state WHERE id = 1 FOR UPDATE"))

        response = await asyncio.wait_for(client.get("/health/ready"), timeout=3)

        await holder.rollback()
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


async def test_not_ready_when_the_database_file_is_immutable(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    database = Path(make_url(settings.resolved_database_url).database or "")
    chattr = await asyncio.to_thread(subprocess.run, ["chattr", "+i", str(database)], check=False)
    if chattr.returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        await services.db.engine.dispose()

        response = await client.get("/health/ready")
    finally:
        await asyncio.to_thread(subprocess.run, ["chattr", "-i", str(database)], check=True)

    assert response.status_code == 503
    assert response.json()["error"]["details"]["failed_checks"] == ["database"]


async def test_not_ready_names_the_storage_check_when_the_probe_folder_cannot_be_created(
    client: httpx.AsyncClient, services: Services
) -> None:
    root = services.settings.resolved_storage_path
    root.mkdir(parents=True, exist_ok=True)
    (root / "health").write_bytes(b"a file where the probe folder should be")

    response = await client.get("/health/ready")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "STORAGE_UNAVAILABLE"
    assert error["details"]["failed_checks"] == ["storage"]
