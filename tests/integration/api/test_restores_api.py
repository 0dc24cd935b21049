"""Restores through the HTTP API: the PRD's security cases, on SQLite; those that rest on row
locks, compare-and-set, counted windows or expiry in the database also on PostgreSQL."""

import hashlib
from datetime import UTC, datetime

import httpx
import pytest

from ssbg.domain.enums import KeyVersionStatus, Role
from ssbg.domain.incident import IncidentLevel
from ssbg.infrastructure.db.models import BackupMetadata, KeyVersion
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.backups import get_record, random_payload, upload
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.restores import (
    backup_of,
    download,
    request_restore,
    set_incident_level,
)
from tests.support.rows import set_fields

MIB = 1024 * 1024


async def test_operators_may_not_restore(client: httpx.AsyncClient, services: Services) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    backup_id = await backup_of(client, operator, b"payload")

    response = await request_restore(client, operator, backup_id)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN_ROLE"


async def test_confidential_restore_without_mfa_is_refused_and_recorded(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payroll", classification="CONFIDENTIAL")

    response = await request_restore(client, admin, backup_id)

    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["code"], error["details"]["rule"]) == ("AUTH_MFA_REQUIRED", "P3b")
    denied = (await audit_entries(services.db, "RESTORE_DENIED"))[-1]
    assert denied.details["code"] == "AUTH_MFA_REQUIRED"
    assert "token" not in response.text


async def test_confidential_restore_with_mfa_completes(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payroll", classification="CONFIDENTIAL")

    response = await request_restore(client, admin, backup_id, totp_at=clock.now())

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["status"] == "COMPLETED"
    assert data["mfa_verified"] is True
    assert (await download(client, admin, data)).content == b"payroll"


async def test_admin_restore_of_secret_is_denied_by_policy(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"keys", classification="SECRET")

    response = await request_restore(client, admin, backup_id, totp_at=clock.now())

    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["code"], error["details"]["rule"]) == ("POLICY_DENIED", "P3")


async def test_super_admin_restores_secret_with_mfa(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    backup_id = await backup_of(client, bootstrap_key, b"keys", classification="SECRET")

    response = await request_restore(client, bootstrap_key, backup_id, totp_at=clock.now())

    assert response.status_code == 201, response.text


@pytest.mark.both_backends
@pytest.mark.parametrize("settings_overrides", [{"max_restores_per_key_per_hour": 10}])
async def test_the_eleventh_restore_in_an_hour_is_rate_limited(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"small")
    first = clock.now()

    statuses = []
    for _ in range(15):
        clock.advance(seconds=60)
        statuses.append((await request_restore(client, admin, backup_id)).status_code)

    assert statuses == [201] * 10 + [429] * 5
    limited = await request_restore(client, admin, backup_id)
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    assert limited.json()["error"]["details"]["rule"] == "P5"
    # The oldest counted restore (at first + 60 s) leaves the window 3600 s after it was made.
    expected = int((first.timestamp() + 60 + 3600) - clock.now().timestamp())
    assert int(limited.headers["Retry-After"]) == expected
    clock.advance(seconds=expected)
    assert (await request_restore(client, admin, backup_id)).status_code == 201


@pytest.mark.parametrize("settings_overrides", [{"business_hours": "08-18"}])
async def test_restore_outside_business_hours_is_denied_naming_them(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"small")
    clock.set(datetime(2026, 11, 27, 19, 30, tzinfo=UTC))

    response = await request_restore(client, admin, backup_id)

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["details"] == {"rule": "P4", "reason_category": "BUSINESS_HOURS"}
    assert "business hours" in error["message"].lower()


@pytest.mark.both_backends
@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_tampered_ciphertext_fails_quarantines_and_issues_no_token(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, random_payload(3 * MIB))
    record = await get_record(services, backup_id)
    assert record is not None
    stored = bytearray(await services.object_store.read_bytes(record.storage_ref))
    stored[len(stored) // 2] ^= 0x01
    await services.object_store.put_bytes(record.storage_ref, bytes(stored))

    response = await request_restore(client, admin, backup_id)

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTEGRITY_FAILURE"
    assert "download" not in response.text
    status = await client.get(f"/backups/{backup_id}/status", headers=headers(admin))
    assert status.json()["data"]["status"] == "QUARANTINED"
    assert status.json()["data"]["transitions"][-1]["reason"] == "INTEGRITY_FAILURE"
    failed = (await audit_entries(services.db, "RESTORE_FAILED"))[-1]
    assert failed.details["reason"] == "INTEGRITY_FAILURE"
    assert failed.details["quarantined"] is True
    again = await request_restore(client, admin, backup_id)
    assert again.status_code == 409
    await assert_chain_valid(services.db)


@pytest.mark.both_backends
async def test_expired_token_is_gone_and_a_fresh_one_can_be_collected(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    restore = (await request_restore(client, admin, backup_id)).json()["data"]
    assert restore["download"]["expires_at"] is not None

    clock.advance(seconds=3600)
    expired = await download(client, admin, restore)
    reissued = await client.post(f"/restores/{restore['restore_id']}/token", headers=headers(admin))

    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "RESTORE_TOKEN_EXPIRED"
    assert reissued.status_code == 201
    fresh = reissued.json()["data"]
    assert fresh["download"]["token"] != restore["download"]["token"]
    assert (await download(client, admin, fresh)).content == b"payload"
    assert (await download(client, admin, restore)).status_code == 404  # the old token is dead


@pytest.mark.both_backends
async def test_download_is_bound_to_the_requesting_key(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    other = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    restore = (await request_restore(client, admin, backup_id)).json()["data"]

    stolen = await download(client, other, restore)
    wrong_token = await client.get(
        f"/restores/{restore['restore_id']}/download",
        headers={**headers(admin), "X-Restore-Token": "not-the-token"},
    )

    assert stolen.status_code == 404
    assert stolen.json()["error"]["code"] == "RESTORE_NOT_FOUND"
    assert wrong_token.status_code == 404
    refused = [
        e for e in await audit_entries(services.db, "RESTORE_DOWNLOAD") if e.result == "DENIED"
    ]
    assert [e.actor_id for e in refused] == [other.record.id, admin.record.id]


@pytest.mark.both_backends
async def test_replayed_totp_code_is_refused(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payroll", classification="CONFIDENTIAL")
    code_time = clock.now()

    first = await request_restore(client, admin, backup_id, totp_at=code_time)
    replay = await request_restore(client, admin, backup_id, totp_at=code_time)

    assert first.status_code == 201
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "AUTH_MFA_INVALID"


@pytest.mark.both_backends
async def test_quarantine_level_sends_restores_to_approval_by_a_second_admin(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    requester = await create_api_key(services, Role.ADMIN)
    approver = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, requester, b"restore me under quarantine")
    await set_incident_level(services, bootstrap_key, IncidentLevel.QUARANTINE)

    pending = await request_restore(client, requester, backup_id, totp_at=clock.now())
    restore_id = pending.json()["data"]["restore_id"]
    clock.advance(seconds=30)
    self_approval = await client.post(
        f"/restores/{restore_id}/approve", headers=headers(requester, totp_at=clock.now())
    )
    not_yet = await client.post(f"/restores/{restore_id}/token", headers=headers(requester))
    approved = await client.post(
        f"/restores/{restore_id}/approve", headers=headers(approver, totp_at=clock.now())
    )
    clock.advance(seconds=30)
    collected = await client.post(
        f"/restores/{restore_id}/token", headers=headers(requester, totp_at=clock.now())
    )

    assert pending.status_code == 202
    assert pending.json()["data"]["status"] == "PENDING_APPROVAL"
    assert pending.json()["data"]["download"] is None
    assert self_approval.status_code == 403
    assert self_approval.json()["error"]["details"]["rule"] == "APPROVAL"
    assert not_yet.status_code == 409
    assert approved.status_code == 200, approved.text
    assert approved.json()["data"]["status"] == "COMPLETED"
    assert approved.json()["data"]["approved_by"] == str(approver.record.id)
    assert approved.json()["data"]["download"] is None
    assert collected.status_code == 201, collected.text
    body = await download(client, requester, collected.json()["data"])
    assert body.content == b"restore me under quarantine"
    actions = [e.action for e in await audit_entries(services.db)]
    assert actions.count("RESTORE_APPROVED") == 1
    assert actions.index("RESTORE_APPROVED") < actions.index("KEY_UNWRAP")


@pytest.mark.both_backends
async def test_rejected_restore_never_unwraps_a_key(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    requester = await create_api_key(services, Role.ADMIN)
    approver = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, requester, b"payload")
    await set_incident_level(services, bootstrap_key, IncidentLevel.QUARANTINE)
    pending = (await request_restore(client, requester, backup_id, totp_at=clock.now())).json()

    rejected = await client.post(
        f"/restores/{pending['data']['restore_id']}/reject",
        headers=headers(approver, totp_at=clock.now()),
        json={"reason": "not during the incident"},
    )

    assert rejected.status_code == 200
    assert rejected.json()["data"]["status"] == "REJECTED"
    assert await audit_entries(services.db, "KEY_UNWRAP") == []


@pytest.mark.both_backends
async def test_lockdown_blocks_backups_restores_approvals_and_downloads_for_good(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    requester = await create_api_key(services, Role.ADMIN)
    approver = await create_api_key(services, Role.ADMIN)
    auditor = await create_api_key(services, Role.AUDITOR)
    backup_id = await backup_of(client, requester, b"payload")
    completed = (await request_restore(client, requester, backup_id)).json()["data"]
    await set_incident_level(services, bootstrap_key, IncidentLevel.QUARANTINE)
    pending = (await request_restore(client, requester, backup_id, totp_at=clock.now())).json()
    await set_incident_level(services, bootstrap_key, IncidentLevel.LOCKDOWN)
    clock.advance(days=30)

    responses = {
        "backup": await upload(client, requester, b"more", mode="raw"),
        "restore": await request_restore(client, requester, backup_id),
        "approve": await client.post(
            f"/restores/{pending['data']['restore_id']}/approve",
            headers=headers(approver, totp_at=clock.now()),
        ),
        "token": await client.post(
            f"/restores/{completed['restore_id']}/token", headers=headers(requester)
        ),
        "download": await download(client, requester, completed),
    }

    for name, response in responses.items():
        assert response.status_code == 423, (name, response.text)
        assert response.json()["error"]["code"] == "INCIDENT_LOCKDOWN"
    review = await client.get("/audit/entries?limit=5", headers=headers(auditor))
    validation = await client.post("/audit/validate", headers=headers(auditor))
    assert review.status_code == 200
    assert validation.json()["data"]["valid"] is True
    assert (await client.get("/health/ready")).status_code == 200


@pytest.mark.parametrize(
    ("backup_change", "status", "code"),
    [
        ({"status": "DELETED"}, 409, "INVALID_STATE_TRANSITION"),
        ({"status": "QUARANTINED"}, 409, "INVALID_STATE_TRANSITION"),
        ({"status": "CRYPTO_SHREDDED"}, 410, "CRYPTO_SHREDDED"),
    ],
)
async def test_backups_that_cannot_be_restored(
    client: httpx.AsyncClient,
    services: Services,
    backup_change: dict[str, str],
    status: int,
    code: str,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    await set_fields(services, BackupMetadata, _uuid(backup_id), **backup_change)

    response = await request_restore(client, admin, backup_id)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    denied = (await audit_entries(services.db, "RESTORE_DENIED"))[-1]
    assert denied.details["code"] == code


async def test_unknown_backup_is_not_found_and_the_attempt_is_recorded(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    missing = "00000000-0000-4000-8000-000000000000"

    response = await request_restore(client, admin, missing)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "BACKUP_NOT_FOUND"
    requested = (await audit_entries(services.db, "RESTORE_REQUEST"))[-1]
    assert requested.details["backup_id"] == missing


async def test_a_destroyed_key_version_is_refused_even_for_an_active_backup(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    await set_fields(services, KeyVersion, "P-001", status=KeyVersionStatus.DESTROYED)

    response = await request_restore(client, admin, backup_id)

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "CRYPTO_SHREDDED"
    assert (await audit_entries(services.db, "RESTORE_FAILED"))[-1].details["reason"] == (
        "CRYPTO_SHREDDED"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"backup_id": "00000000-0000-4000-8000-000000000000", "justification": "too short"},
        {"backup_id": "not-a-uuid", "justification": "long enough justification"},
        {"justification": "long enough justification"},
        {"backup_id": "00000000-0000-4000-8000-000000000000", "justification": "x" * 20, "x": 1},
    ],
)
async def test_invalid_restore_requests_are_validation_errors(
    client: httpx.AsyncClient, services: Services, body: dict[str, object]
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    response = await client.post("/restores", headers=headers(admin), json=body)
    assert response.status_code == 422
    assert await audit_entries(services.db, "RESTORE_REQUEST") == []


@pytest.mark.parametrize("storage_backend", ["local", "s3"])
@pytest.mark.parametrize("size", [1, MIB, MIB + 1], ids=["1-byte", "1-segment", "1-segment+1"])
async def test_round_trip_at_segment_boundaries(
    client: httpx.AsyncClient, services: Services, size: int
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    payload = random_payload(size)
    backup_id = await backup_of(client, admin, payload, filename="résumé 2026.tar")

    restore = (await request_restore(client, admin, backup_id)).json()["data"]
    response = await download(client, admin, restore)

    assert response.status_code == 200
    assert response.content == payload
    assert response.headers["Content-Length"] == str(size)
    assert response.headers["X-Content-SHA512"] == hashlib.sha512(payload).hexdigest()
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%202026.tar" in response.headers["Content-Disposition"]
    actions = [e.action for e in await audit_entries(services.db)]
    assert actions[-2:] == ["KEY_UNWRAP", "RESTORE_DOWNLOAD"]
    await assert_chain_valid(services.db)


def _uuid(value: str) -> object:
    from uuid import UUID

    return UUID(value)


async def test_a_require_mfa_policy_record_demands_mfa_for_matching_restores(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    created = await client.post(
        "/admin/policies",
        headers=headers(bootstrap_key),
        json={
            "name": "mfa-for-finance",
            "effect": "require_mfa",
            "rule": {"operations": ["restore"], "source_systems": ["finance-*"]},
        },
    )
    assert created.status_code == 201
    clock.advance(minutes=31)  # past incident level 1 of alert M9 (a policy change)
    finance = await upload(client, admin, b"ledger", mode="raw", source_system="finance-db")
    other = await upload(client, admin, b"wiki", mode="raw", source_system="wiki-db")

    without = await request_restore(client, admin, finance.json()["data"]["backup_id"])
    with_code = await request_restore(
        client, admin, finance.json()["data"]["backup_id"], totp_at=clock.now()
    )
    unmatched = await request_restore(client, admin, other.json()["data"]["backup_id"])

    assert without.status_code == 401
    assert without.json()["error"]["details"]["rule"] == "mfa-for-finance"
    assert with_code.status_code == 201
    assert unmatched.status_code == 201
