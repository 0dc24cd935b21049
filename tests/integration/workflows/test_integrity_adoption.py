"""A database written before seals existed is sealed once, when the new version first starts:
its keys, tokens and records keep working; afterwards nothing unsealed is ever adopted."""

import hashlib
import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from ssbg.api.app import create_app
from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.key_store import INTEGRITY_ADOPTED_FILE, FileKeyStore
from ssbg.infrastructure.db.models import ApiKey, RestoreRequest
from ssbg.repositories.sealing import SEALED_MODELS
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.audit_chain import execute
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.restores import backup_of, download, request_restore

# Which database is written behind the gateway matters to how rows are read back: both.
pytestmark = pytest.mark.both_backends


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_an_earlier_versions_database_is_adopted_once_and_keeps_working(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    shared_key_store: FileKeyStore,
    tmp_path: Path,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, operator, b"kept across the upgrade")
    restore = (await request_restore(client, admin, backup_id)).json()["data"]
    token = restore["download"]["token"]
    # What wave 1 left: bare SHA-256 verifiers, no seals anywhere.
    await execute(
        services,
        *(
            update(ApiKey.__table__).where(ApiKey.id == key.record.id).values(key_hash=sha256(raw))
            for key, raw in ((operator, operator.api_key), (admin, admin.api_key))
        ),
        update(RestoreRequest.__table__).values(token_hash=sha256(token)),
        *(update(model.__table__).values(seal=None) for model in SEALED_MODELS),  # type: ignore[attr-defined]
    )
    keys = tmp_path / "keys-of-the-upgrade"
    shutil.copytree(shared_key_store.directory, keys)
    (keys / INTEGRITY_ADOPTED_FILE).unlink()
    upgraded = build_services(
        settings, clock=clock, key_store=FileKeyStore(keys, TEST_KEY_PASSWORD)
    )
    try:
        sealed = await upgraded.integrity.adopt_if_needed()
        again = await upgraded.integrity.adopt_if_needed()
        transport = httpx.ASGITransport(app=create_app(services=upgraded))
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as fresh:
            me = await fresh.get("/me", headers=headers(operator))
            downloaded = await download(fresh, admin, restore)
        adoptions = await audit_entries(upgraded.db, "INTEGRITY_ADOPT")
        await assert_chain_valid(upgraded.db)
    finally:
        await upgraded.close()

    assert sealed is not None
    assert sealed == {
        "api_keys": 3,
        "restore_requests": 1,
        "backup_metadata": 1,
        "policies": 0,
        "system_state": 1,
        "key_versions": 1,
        "alerts": 0,
        "retention_rules": 0,
    }
    assert again is None
    assert (keys / INTEGRITY_ADOPTED_FILE).exists()
    assert me.status_code == 200
    assert downloaded.status_code == 200
    assert downloaded.content == b"kept across the upgrade"
    assert [entry.details["sealed"] for entry in adoptions] == [sealed]


async def test_once_adopted_a_row_stripped_of_its_seal_is_never_adopted_again(
    client: httpx.AsyncClient, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    await execute(
        services, update(ApiKey.__table__).where(ApiKey.id == operator.record.id).values(seal=None)
    )

    adopted = await services.integrity.adopt_if_needed()
    response = await client.get("/me", headers=headers(operator))

    assert adopted is None
    assert response.status_code == 401
    assert (await audit_entries(services.db, "AUTH_FAILURE"))[-1].details == {"reason": "TAMPERED"}
