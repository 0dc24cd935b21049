"""A gateway that dies while verifying leaves no request VERIFYING for ever; a key file that
is missing fails closed."""

import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from ssbg.api.app import create_app
from ssbg.domain.enums import Role
from ssbg.domain.key_versions import FIRST_KEY_VERSION
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.models import RestoreRequest
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit import audit_entries
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key
from tests.support.restores import backup_of, request_restore


async def _verifying(
    services: Services, requester: IssuedApiKey, lease_left: timedelta
) -> RestoreRequest:
    now = services.clock.now()
    restore = RestoreRequest(
        id=uuid4(),
        backup_id=uuid4(),
        requested_by=requester.record.id,
        justification="interrupted by a crash",
        status="VERIFYING",
        mfa_verified=False,
        downloads=0,
        lease_expires_at=now + lease_left,
        created_at=now,
        updated_at=now,
    )
    async with services.db.transaction(write=True) as tx:
        await tx.restores.add(restore)
    return restore


@pytest.mark.both_backends
async def test_recovery_fails_verifications_whose_lease_lapsed_and_spares_live_ones(
    services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    dead = await _verifying(services, admin, timedelta(seconds=-1))
    alive = await _verifying(services, admin, timedelta(seconds=30))

    report = await services.backup_recovery.recover()

    assert report.restores_interrupted == [dead.id]
    assert (await services.restores.get_restore(dead.id)).status == "FAILED"
    assert (await services.restores.get_restore(dead.id)).failure_reason == "INTERRUPTED"
    assert (await services.restores.get_restore(alive.id)).status == "VERIFYING"
    failed = (await audit_entries(services.db, "RESTORE_FAILED"))[-1]
    assert (failed.resource, failed.details["reason"]) == (f"restore:{dead.id}", "INTERRUPTED")
    assert await services.backup_recovery.recover() == report.__class__([], [], [])


@pytest.fixture
async def services_without_key_file(
    settings: Settings, shared_key_store: FileKeyStore, tmp_path: Path, clock: FixedClock
) -> AsyncIterator[Services]:
    """A gateway process started after its P-001 private key file went missing (lost volume,
    wrong mount); the gateway was initialised while the file was there."""
    directory = tmp_path / "keys-copy"
    shutil.copytree(shared_key_store.directory, directory)
    first = build_services(
        settings, clock=clock, key_store=FileKeyStore(directory, TEST_KEY_PASSWORD)
    )
    await first.bootstrap.initialize()
    await first.close()
    FileKeyStore(directory, TEST_KEY_PASSWORD).private_key_path(FIRST_KEY_VERSION).unlink()
    built = build_services(
        settings, clock=clock, key_store=FileKeyStore(directory, TEST_KEY_PASSWORD)
    )
    try:
        yield built
    finally:
        await built.close()


async def test_a_missing_key_file_fails_closed_with_key_unavailable(
    services_without_key_file: Services,
) -> None:
    services = services_without_key_file
    admin = await create_api_key(services, Role.ADMIN)
    transport = httpx.ASGITransport(app=create_app(services=services), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as client:
        backup_id = await backup_of(client, admin, b"still encrypted with the public key")

        response = await request_restore(client, admin, backup_id)
        ready = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "KEY_UNAVAILABLE"
    assert "download" not in response.text
    assert ready.status_code == 503
    assert ready.json()["error"]["details"]["failed_checks"] == ["key_store"]
    failed = (await audit_entries(services.db, "RESTORE_FAILED"))[-1]
    assert failed.details == {
        "backup_id": backup_id,
        "reason": "KEY_UNAVAILABLE",
        "quarantined": False,
        "from_status": "VERIFYING",
        "to_status": "FAILED",
    }
