import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.container import Services
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
