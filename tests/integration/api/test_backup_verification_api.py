"""``POST /backups/{id}/verify`` (SPEC §13.4): verification at rest through the HTTP API, on
both stores. An intact backup is VALID; an altered, swapped, missing or misrecorded one is
INVALID — a 200 finding, not an error — and is quarantined and audited; no plaintext is ever
in the answer; a store that does not answer is 503 and nothing is recorded as verified."""

from pathlib import Path

import httpx
import pytest

from ssbg.domain.enums import BackupStatus, KeyVersionStatus, Role
from ssbg.domain.key_versions import FIRST_KEY_VERSION
from ssbg.infrastructure.db.models import BackupMetadata, KeyVersion
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, audit_entries, entries_for
from tests.support.backups import random_payload
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.fault_contract import plaintext_on_disk
from tests.support.restores import backup_of
from tests.support.rows import set_fields
from tests.support.verification import flip_byte, record_of, verify

MIB = 1024 * 1024
BOTH_STORES = pytest.mark.parametrize("storage_backend", ["local", "s3"])
# Recognisable plaintext: a response that carried any of it would show this marker.
MARKER = b"PLAINTEXT-MARKER-7f3a"


def marked_payload(size: int) -> bytes:
    return (MARKER * (size // len(MARKER) + 1))[:size]


async def backup_status(client: httpx.AsyncClient, caller: IssuedApiKey, backup_id: str) -> str:
    response = await client.get(f"/backups/{backup_id}", headers=headers(caller))
    return str(response.json()["data"]["status"])


@pytest.mark.both_backends
@BOTH_STORES
async def test_an_intact_backup_verifies_valid_and_the_result_is_recorded(
    client: httpx.AsyncClient, services: Services, clock: FixedClock, tmp_path: Path
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    payload = marked_payload(3 * MIB + 5)
    backup_id = await backup_of(client, admin, payload)
    clock.advance(minutes=5)

    response = await verify(client, admin, backup_id)

    assert response.status_code == 200, response.text
    result = response.json()["data"]
    assert result == {
        "backup_id": backup_id,
        "valid": True,
        "result": "VALID",
        "verified_at": clock.now().isoformat().replace("+00:00", "Z"),
        "reason": None,
        "mismatched": [],
        "status": "ACTIVE",
        "recorded": True,
    }
    assert MARKER not in response.content
    # Nothing of the plaintext on disk: the database, its WAL, the local store.
    assert plaintext_on_disk([tmp_path], [payload]) == []
    shown = (await client.get(f"/backups/{backup_id}", headers=headers(admin))).json()["data"]
    assert (shown["last_verification_result"], shown["status"]) == ("VALID", "ACTIVE")
    assert shown["last_verified_at"] == result["verified_at"]
    [entry] = await audit_entries(services.db, "BACKUP_VERIFY")
    assert (entry.resource, entry.result, entry.actor_id) == (
        f"backup:{backup_id}",
        "SUCCESS",
        admin.record.id,
    )
    assert entry.details["verification_result"] == "VALID"
    assert entry.details["key_version"] == FIRST_KEY_VERSION
    assert entry.details["verified_bytes"] == 3 * MIB + 5
    # The DEK was unwrapped to check the segments, but nothing that releases plaintext ran.
    assert await audit_entries(services.db, "KEY_UNWRAP") == []
    await assert_chain_valid(services.db)


@pytest.mark.both_backends
@BOTH_STORES
async def test_a_flipped_byte_is_invalid_and_the_backup_quarantined_in_one_transaction(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, marked_payload(3 * MIB))
    await flip_byte(services, backup_id)

    response = await verify(client, admin, backup_id)

    assert response.status_code == 200, response.text
    result = response.json()["data"]
    assert (result["valid"], result["result"], result["reason"], result["status"]) == (
        False,
        "INVALID",
        "AUTHENTICATION_FAILED",
        "QUARANTINED",
    )
    assert MARKER not in response.content
    record = await record_of(services, backup_id)
    assert (record.status, record.last_verification_result) == (
        BackupStatus.QUARANTINED,
        "INVALID",
    )
    status = (await client.get(f"/backups/{backup_id}/status", headers=headers(admin))).json()
    last = status["data"]["transitions"][-1]
    assert (last["from_status"], last["to_status"], last["reason"]) == (
        "ACTIVE",
        "QUARANTINED",
        "INTEGRITY_FAILURE",
    )
    # The finding, then the move it caused: adjacent entries of one transaction.
    verify_entry, moved = (await entries_for(services.db, f"backup:{backup_id}"))[-2:]
    assert (verify_entry.action, verify_entry.result) == ("BACKUP_VERIFY", "FAILED")
    assert verify_entry.details["reason"] == "AUTHENTICATION_FAILED"
    assert (moved.action, moved.result) == ("BACKUP_STATUS_CHANGE", "FAILED")
    assert moved.details["during"] == "verify"
    assert moved.sequence_number == verify_entry.sequence_number + 1
    await assert_chain_valid(services.db)


@BOTH_STORES
async def test_a_wrapped_key_swapped_from_another_backup_is_invalid(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    victim = await backup_of(client, admin, random_payload(MIB))
    other = await backup_of(client, admin, random_payload(MIB))
    victim_record, other_record = (
        await record_of(services, victim),
        await record_of(services, other),
    )
    await services.object_store.put_bytes(
        victim_record.wrapped_dek_ref,
        await services.object_store.read_bytes(other_record.wrapped_dek_ref),
    )

    result = (await verify(client, admin, victim)).json()["data"]

    assert (result["valid"], result["reason"], result["status"]) == (
        False,
        "AUTHENTICATION_FAILED",
        "QUARANTINED",
    )
    assert await backup_status(client, admin, other) == "ACTIVE"


async def test_a_wrong_recorded_checksum_is_a_checksum_mismatch(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, random_payload(MIB))
    record = await record_of(services, backup_id)
    # Written by the gateway's own write path (sealed): the metadata is wrong, not tampered.
    await set_fields(services, BackupMetadata, record.id, checksum_plaintext="ab" * 64)

    result = (await verify(client, admin, backup_id)).json()["data"]

    assert (result["valid"], result["reason"], result["mismatched"], result["status"]) == (
        False,
        "CHECKSUM_MISMATCH",
        ["checksum_plaintext"],
        "QUARANTINED",
    )
    assert "ab" * 64 not in str(result)


@BOTH_STORES
async def test_a_missing_object_is_invalid(client: httpx.AsyncClient, services: Services) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, random_payload(MIB))
    await services.object_store.delete((await record_of(services, backup_id)).storage_ref)

    result = (await verify(client, admin, backup_id)).json()["data"]

    assert (result["valid"], result["reason"], result["status"]) == (
        False,
        "OBJECT_MISSING",
        "QUARANTINED",
    )


async def test_a_quarantined_backup_is_verified_again_without_a_second_move(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, random_payload(MIB))
    await flip_byte(services, backup_id)
    await verify(client, admin, backup_id)
    moves = len(
        (await client.get(f"/backups/{backup_id}/status", headers=headers(admin))).json()["data"][
            "transitions"
        ]
    )
    clock.advance(minutes=1)

    again = (await verify(client, admin, backup_id)).json()["data"]

    assert (again["valid"], again["status"], again["recorded"]) == (False, "QUARANTINED", True)
    status = (await client.get(f"/backups/{backup_id}/status", headers=headers(admin))).json()
    assert len(status["data"]["transitions"]) == moves
    assert (await record_of(services, backup_id)).last_verified_at == clock.now()


async def test_an_older_verification_never_overwrites_a_newer_one(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, random_payload(MIB))
    clock.advance(minutes=10)
    await verify(client, admin, backup_id)
    newest = clock.now()
    # A verification that started earlier (a slow one, finishing last) is recorded as such.
    clock.advance(minutes=-5)

    late = (await verify(client, admin, backup_id)).json()["data"]

    assert (late["valid"], late["recorded"]) == (True, False)
    assert (await record_of(services, backup_id)).last_verified_at == newest
    assert (await audit_entries(services.db, "BACKUP_VERIFY"))[-1].details["superseded"] is True


@pytest.mark.parametrize(
    ("status", "code", "http"),
    [
        (BackupStatus.DELETED, "INVALID_STATE_TRANSITION", 409),
        (BackupStatus.FAILED, "INVALID_STATE_TRANSITION", 409),
        (BackupStatus.PROCESSING, "INVALID_STATE_TRANSITION", 409),
        (BackupStatus.CRYPTO_SHREDDED, "CRYPTO_SHREDDED", 410),
    ],
)
async def test_backups_without_objects_or_key_are_refused_and_nothing_is_recorded(
    client: httpx.AsyncClient,
    services: Services,
    status: BackupStatus,
    code: str,
    http: int,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    await set_fields(
        services, BackupMetadata, (await record_of(services, backup_id)).id, status=status
    )

    response = await verify(client, admin, backup_id)

    assert response.status_code == http
    error = response.json()["error"]
    assert error["code"] == code
    if http == 409:
        assert error["details"] == {"backup_status": status.value}
    assert (await record_of(services, backup_id)).last_verified_at is None
    assert await audit_entries(services.db, "BACKUP_VERIFY") == []


async def test_a_destroyed_key_version_is_gone_and_nothing_is_recorded(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    # Destroyed on another replica a moment ago; this backup's shred step has not run yet.
    await set_fields(services, KeyVersion, FIRST_KEY_VERSION, status=KeyVersionStatus.DESTROYED)

    response = await verify(client, admin, backup_id)

    assert (response.status_code, response.json()["error"]["code"]) == (410, "CRYPTO_SHREDDED")
    record = await record_of(services, backup_id)
    assert (record.status, record.last_verified_at) == (BackupStatus.ACTIVE, None)


async def test_an_unknown_backup_is_404(client: httpx.AsyncClient, services: Services) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    response = await verify(client, admin, "00000000-0000-4000-8000-000000000000")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "BACKUP_NOT_FOUND")


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.AUDITOR])
async def test_operators_and_auditors_may_not_verify(
    client: httpx.AsyncClient, services: Services, role: Role
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    caller = await create_api_key(services, role)

    response = await verify(client, caller, backup_id)

    assert (response.status_code, response.json()["error"]["code"]) == (403, "FORBIDDEN_ROLE")
    assert (await audit_entries(services.db, "AUTHZ_DENY"))[-1].actor_id == caller.record.id
    assert await audit_entries(services.db, "BACKUP_VERIFY") == []


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.AUDITOR])
async def test_operators_and_auditors_may_not_start_or_follow_verify_jobs(
    client: httpx.AsyncClient, services: Services, role: Role
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    job_id = (await client.post("/admin/verify", headers=headers(admin))).json()["data"]["job_id"]
    caller = await create_api_key(services, role)

    started = await client.post("/admin/verify", headers=headers(caller), json={})
    followed = await client.get(f"/admin/verify/{job_id}", headers=headers(caller))

    assert (started.status_code, followed.status_code) == (403, 403)
    assert len(await audit_entries(services.db, "VERIFY_JOB_START")) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": ["DELETED"]}, "status.0"),
        ({"status": []}, "status"),
        ({"source_system": "db/prod"}, "source_system"),
        ({"classification": "TOP"}, "classification"),
        ({"created_from": "2026-12-02T00:00:00Z", "created_to": "2026-12-01T00:00:00Z"}, "body"),
        ({"created_to": "9999-12-31T23:59:59-01:00"}, "created_to"),
        ({"sources": "db-*"}, "sources"),
    ],
)
async def test_a_verify_job_selection_that_cannot_be_verified_is_422(
    client: httpx.AsyncClient, services: Services, body: dict[str, object], field: str
) -> None:
    admin = await create_api_key(services, Role.ADMIN)

    response = await client.post("/admin/verify", headers=headers(admin), json=body)

    assert (response.status_code, response.json()["error"]["code"]) == (422, "VALIDATION_ERROR")
    assert field in response.json()["error"]["details"]
    assert await audit_entries(services.db, "VERIFY_JOB_START") == []


async def test_an_unknown_verify_job_is_404(client: httpx.AsyncClient, services: Services) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    response = await client.get(
        "/admin/verify/00000000-0000-4000-8000-000000000000", headers=headers(admin)
    )
    assert (response.status_code, response.json()["error"]["code"]) == (404, "NOT_FOUND")
