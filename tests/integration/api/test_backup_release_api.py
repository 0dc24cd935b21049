"""``POST /backups/{id}/release`` (SPEC §13.4): ``QUARANTINED → ACTIVE`` (admin with MFA) only
after a verification made since the quarantine found the backup VALID; otherwise 409
``CONFLICT`` (``VERIFICATION_REQUIRED``), audited, nothing changed."""

import httpx
import pytest

from ssbg.domain.enums import BackupStatus, Role
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.backups import random_payload
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.restores import backup_of, download, request_restore
from tests.support.verification import (
    RELEASE_REASON,
    flip_byte,
    put_back,
    record_of,
    release,
    verify,
)

MIB = 1024 * 1024


def refusal_reason(response: httpx.Response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["details"].get("reason")


@pytest.mark.both_backends
@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_release_waits_for_a_valid_verification_made_after_the_quarantine(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    payload = random_payload(2 * MIB)
    backup_id = await backup_of(client, admin, payload)
    original = await flip_byte(services, backup_id)
    assert (await verify(client, admin, backup_id)).json()["data"]["status"] == "QUARANTINED"

    at_quarantine = await release(client, admin, backup_id, clock)
    clock.advance(minutes=1)
    failed_again = (await verify(client, admin, backup_id)).json()["data"]
    after_failed_verify = await release(client, admin, backup_id, clock)
    await put_back(services, backup_id, original)  # the object is repaired (from a replica)
    after_repair = await release(client, admin, backup_id, clock)
    clock.advance(minutes=1)
    verified = (await verify(client, admin, backup_id)).json()["data"]
    released = await release(client, admin, backup_id, clock)

    assert refusal_reason(at_quarantine) == (409, "CONFLICT", "VERIFICATION_REQUIRED")
    assert failed_again["valid"] is False
    assert refusal_reason(after_failed_verify) == (409, "CONFLICT", "VERIFICATION_REQUIRED")
    assert after_failed_verify.json()["error"]["details"]["last_verification_result"] == "INVALID"
    assert refusal_reason(after_repair) == (409, "CONFLICT", "VERIFICATION_REQUIRED")
    assert (verified["valid"], verified["status"]) == (
        True,
        "QUARANTINED",
    )  # verify releases nothing
    assert released.status_code == 200, released.text
    assert released.json()["data"]["status"] == "ACTIVE"
    status = (await client.get(f"/backups/{backup_id}/status", headers=headers(admin))).json()
    last = status["data"]["transitions"][-1]
    assert (last["from_status"], last["to_status"], last["reason"]) == (
        "QUARANTINED",
        "ACTIVE",
        "VERIFIED_AFTER_QUARANTINE",
    )
    entries = await audit_entries(services.db, "BACKUP_RELEASE")
    assert [entry.result for entry in entries] == ["DENIED", "DENIED", "DENIED", "SUCCESS"]
    assert entries[-1].details["justification"] == RELEASE_REASON
    assert entries[-1].details["to_status"] == "ACTIVE"
    assert entries[-1].actor_id == admin.record.id
    # Back in service: it restores, byte for byte.
    restore = await request_restore(client, admin, backup_id)
    assert restore.status_code == 201, restore.text
    assert (await download(client, admin, restore.json()["data"])).content == payload
    await assert_chain_valid(services.db)


@pytest.mark.both_backends
async def test_a_verification_made_before_the_quarantine_does_not_release_it(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, random_payload(MIB))
    assert (await verify(client, admin, backup_id)).json()["data"]["valid"] is True
    clock.advance(minutes=1)
    original = await flip_byte(services, backup_id)
    restore = await request_restore(client, admin, backup_id)  # finds it, quarantines it
    assert restore.status_code == 500
    await put_back(services, backup_id, original)

    refused = await release(client, admin, backup_id, clock)
    clock.advance(minutes=1)
    await verify(client, admin, backup_id)
    released = await release(client, admin, backup_id, clock)

    assert refusal_reason(refused) == (409, "CONFLICT", "VERIFICATION_REQUIRED")
    details = refused.json()["error"]["details"]
    assert details["last_verification_result"] == "VALID"
    assert details["last_verified_at"] < details["quarantined_at"]
    assert released.status_code == 200, released.text


async def test_only_a_quarantined_backup_is_released(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    await verify(client, admin, backup_id)

    response = await release(client, admin, backup_id, clock)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "INVALID_STATE_TRANSITION"
    assert response.json()["error"]["details"] == {"backup_status": "ACTIVE"}
    assert (await record_of(services, backup_id)).status is BackupStatus.ACTIVE


async def test_release_needs_a_valid_totp_code(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    await flip_byte(services, backup_id)
    await verify(client, admin, backup_id)
    path, body = f"/backups/{backup_id}/release", {"reason": RELEASE_REASON}

    missing = await client.post(path, headers=headers(admin), json=body)
    wrong = await client.post(path, headers={**headers(admin), "X-MFA-Token": "000000"}, json=body)

    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "AUTH_MFA_REQUIRED")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "AUTH_MFA_INVALID")
    assert await audit_entries(services.db, "BACKUP_RELEASE") == []
    assert (await record_of(services, backup_id)).status is BackupStatus.QUARANTINED


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.AUDITOR])
async def test_operators_and_auditors_may_not_release(
    client: httpx.AsyncClient, services: Services, role: Role
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    caller = await create_api_key(services, role)

    response = await client.post(
        f"/backups/{backup_id}/release", headers=headers(caller), json={"reason": RELEASE_REASON}
    )

    assert (response.status_code, response.json()["error"]["code"]) == (403, "FORBIDDEN_ROLE")


@pytest.mark.parametrize("body", [{}, {"reason": "too short"}, {"reason": 7}, {"why": "x" * 20}])
async def test_release_needs_a_reason(
    client: httpx.AsyncClient, services: Services, clock: FixedClock, body: dict[str, object]
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")

    response = await client.post(
        f"/backups/{backup_id}/release",
        headers=headers(admin, totp_at=clock.now()),
        json=body,
    )

    assert (response.status_code, response.json()["error"]["code"]) == (422, "VALIDATION_ERROR")
