"""Legal holds over the API (SPEC §13.4): placed and released by an admin with MFA, audited,
shown on the backup; a held backup is deleted neither by hand nor by a crypto-shred of its key
version until the hold is released."""

from uuid import UUID

import httpx
import pytest
from sqlalchemy import update

from ssbg.domain.enums import BackupStatus, Role
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.audit_chain import execute
from tests.support.backups import get_record, objects_left
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.keys import rewrap, rotate, shred, with_mfa
from tests.support.restores import backup_of
from tests.support.retention import (
    apply_retention,
    create_rule,
    place_hold,
    release_hold,
    status_of,
)

pytestmark = pytest.mark.both_backends


async def test_a_hold_is_shown_on_the_backup_audited_and_released(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, operator, b"evidence")

    held = await place_hold(client, clock, admin, backup_id, "litigation hold LIT-7")
    seen_by_owner = await client.get(f"/backups/{backup_id}", headers=headers(operator))
    released = await release_hold(client, clock, admin, backup_id, "LIT-7 closed")

    assert held.status_code == 200, held.text
    hold = held.json()["data"]["legal_hold"]
    assert hold["held"] is True
    assert hold["reason"] == "litigation hold LIT-7"
    assert hold["by"] == str(admin.record.id)
    assert hold["at"].endswith("Z")
    assert held.json()["data"]["status"] == "ACTIVE"
    assert seen_by_owner.json()["data"]["legal_hold"] == hold
    assert released.status_code == 200, released.text
    assert released.json()["data"]["legal_hold"] == {
        "held": False,
        "reason": None,
        "at": None,
        "by": None,
    }
    (placed,) = await audit_entries(services.db, "BACKUP_HOLD")
    (lifted,) = await audit_entries(services.db, "BACKUP_HOLD_RELEASE")
    assert placed.resource == lifted.resource == f"backup:{backup_id}"
    assert (placed.actor_id, placed.details["reason"]) == (admin.record.id, "litigation hold LIT-7")
    assert lifted.details["reason"] == "LIT-7 closed"
    assert lifted.details["hold_reason"] == "litigation hold LIT-7"
    assert lifted.details["held_by"] == str(admin.record.id)
    await assert_chain_valid(services.db)


async def test_a_held_backup_cannot_be_deleted_until_its_hold_is_released(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, operator, b"evidence")
    await place_hold(client, clock, admin, backup_id)

    refused = await client.delete(f"/backups/{backup_id}", headers=headers(admin))

    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "CONFLICT"
    assert error["details"]["reason"] == "LEGAL_HOLD"
    assert error["details"]["held_by"] == str(admin.record.id)
    assert await status_of(services, backup_id) is BackupStatus.ACTIVE
    assert len(await objects_left(services, backup_id)) == 2
    (attempt,) = await audit_entries(services.db, "BACKUP_DELETE")
    assert (attempt.result, attempt.details["reason"]) == ("DENIED", "LEGAL_HOLD")

    assert (await release_hold(client, clock, admin, backup_id)).status_code == 200
    deleted = await client.delete(f"/backups/{backup_id}", headers=headers(admin))

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"]["status"] == "DELETED"
    assert await objects_left(services, backup_id) == []


async def test_holds_need_an_admin_with_a_valid_totp_code_and_change_nothing_otherwise(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    auditor = await create_api_key(services, Role.AUDITOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, operator, b"evidence")
    url, body = f"/backups/{backup_id}/hold", {"reason": "litigation hold"}

    by_operator = await client.post(url, headers=headers(operator), json=body)
    by_auditor = await client.post(url, headers=headers(auditor), json=body)
    without_code = await client.post(url, headers=headers(admin), json=body)
    wrong_code = await client.post(
        url, headers={**headers(admin), "X-MFA-Token": "000000"}, json=body
    )
    release_without_code = await client.request("DELETE", url, headers=headers(admin), json=body)

    assert [r.status_code for r in (by_operator, by_auditor)] == [403, 403]
    assert by_operator.json()["error"]["code"] == "FORBIDDEN_ROLE"
    assert (without_code.status_code, without_code.json()["error"]["code"]) == (
        401,
        "AUTH_MFA_REQUIRED",
    )
    assert (wrong_code.status_code, wrong_code.json()["error"]["code"]) == (
        401,
        "AUTH_MFA_INVALID",
    )
    assert release_without_code.status_code == 401
    record = await get_record(services, backup_id)
    assert record is not None
    assert not record.held
    assert await audit_entries(services.db, "BACKUP_HOLD") == []


async def test_bad_hold_requests_are_refused_with_a_clear_reason(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    held_id = await backup_of(client, operator, b"held")
    deleted_id = await backup_of(client, operator, b"gone")
    plain_id = await backup_of(client, operator, b"plain")
    await client.delete(f"/backups/{deleted_id}", headers=headers(admin))
    await place_hold(client, clock, admin, held_id, "first hold")

    on_deleted = await place_hold(client, clock, admin, deleted_id)
    twice = await place_hold(client, clock, admin, held_id, "second hold")
    release_not_held = await release_hold(client, clock, admin, plain_id)
    unknown = await place_hold(client, clock, admin, "00000000-0000-4000-8000-000000000000")
    no_reason = await client.post(
        f"/backups/{plain_id}/hold", headers=with_mfa(clock, admin), json={}
    )
    release_no_reason = await client.request(
        "DELETE", f"/backups/{held_id}/hold", headers=with_mfa(clock, admin)
    )

    assert on_deleted.status_code == 409
    assert on_deleted.json()["error"]["code"] == "INVALID_STATE_TRANSITION"
    assert on_deleted.json()["error"]["details"] == {"status": "DELETED", "reason": "NOT_STORED"}
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "CONFLICT")
    assert twice.json()["error"]["details"]["reason"] == "ALREADY_HELD"
    assert release_not_held.status_code == 409
    assert release_not_held.json()["error"]["details"]["reason"] == "NOT_HELD"
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "BACKUP_NOT_FOUND")
    assert (no_reason.status_code, no_reason.json()["error"]["code"]) == (422, "VALIDATION_ERROR")
    assert release_no_reason.status_code == 422
    record = await get_record(services, held_id)
    assert record is not None
    assert record.legal_hold_reason == "first hold"
    assert len(await audit_entries(services.db, "BACKUP_HOLD")) == 1
    assert await audit_entries(services.db, "BACKUP_HOLD_RELEASE") == []


@pytest.mark.own_key_store
async def test_a_held_backup_blocks_the_shred_of_its_key_version_which_lists_it(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    held_id = await backup_of(client, operator, b"evidence")
    other_id = await backup_of(client, operator, b"ordinary")
    await place_hold(client, clock, admin, held_id)
    await rotate(client, clock, bootstrap_key)

    refused = await shred(client, clock, bootstrap_key, "P-001")

    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "CONFLICT"
    assert error["details"] == {
        "reason": "LEGAL_HOLD",
        "held_backups": [held_id],
        "held_count": 1,
    }
    assert services.key_store.private_key_path("P-001").exists()
    key = (await client.get("/admin/keys/P-001", headers=headers(admin))).json()["data"]
    assert key["status"] == "RETIRED"
    assert {await status_of(services, b) for b in (held_id, other_id)} == {BackupStatus.ACTIVE}
    (attempt,) = await audit_entries(services.db, "CRYPTO_SHRED_START")
    assert (attempt.result, attempt.details["held_backups"]) == ("DENIED", [held_id])

    assert (await release_hold(client, clock, admin, held_id)).status_code == 200
    done = await shred(client, clock, bootstrap_key, "P-001")
    hold_after = await place_hold(client, clock, admin, held_id)

    assert done.status_code == 200, done.text
    assert done.json()["data"]["backups_shredded"] == 2
    assert {await status_of(services, b) for b in (held_id, other_id)} == {
        BackupStatus.CRYPTO_SHREDDED
    }
    assert hold_after.status_code == 409
    assert hold_after.json()["error"]["details"]["status"] == "CRYPTO_SHREDDED"


@pytest.mark.own_key_store
async def test_a_held_backup_may_be_rewrapped_and_its_old_version_then_shredded(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    held_id = await backup_of(client, operator, b"evidence")
    await place_hold(client, clock, admin, held_id)
    await rotate(client, clock, bootstrap_key)

    rewrapped = await rewrap(client, clock, bootstrap_key, "P-001")
    shredded = await shred(client, clock, bootstrap_key, "P-001")

    assert rewrapped.json()["data"]["rewrapped"] == 1
    assert shredded.status_code == 200, shredded.text
    assert shredded.json()["data"]["backups_shredded"] == 0
    record = await get_record(services, held_id)
    assert record is not None
    assert (record.status, record.key_version, record.held) == (
        BackupStatus.ACTIVE,
        "P-002",
        True,
    )


@pytest.mark.own_key_store
async def test_a_hold_on_a_backup_whose_key_version_is_being_shredded_is_refused(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, operator, b"doomed")
    await rotate(client, clock, bootstrap_key)
    # A shred that began (step 1 committed) and has not finished: an interrupted one.
    async with services.db.transaction(write=True) as tx:
        record = await tx.key_versions.get_for_update_or_none("P-001")
        assert record is not None
        record.shred_started_at = clock.now()
        record.shred_reason = "end of retention"

    refused = await place_hold(client, clock, admin, backup_id)

    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == {
        "key_version": "P-001",
        "reason": "KEY_SHREDDING",
    }
    assert not (await get_record(services, backup_id)).held  # type: ignore[union-attr]


@pytest.mark.own_key_store
async def test_a_hold_removed_in_the_database_stops_every_deletion_instead(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    """The hold's fields are sealed with the row: a database writer who clears them (without
    the key store) gets a row that fails its check, and no deletion acts on it."""
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, operator, b"evidence")
    await place_hold(client, clock, admin, backup_id)
    await rotate(client, clock, bootstrap_key)
    await create_rule(client, admin, source_systems=["*"], keep_last=1)
    await backup_of(client, operator, b"newer, under P-002")
    await execute(
        services,
        update(BackupMetadata.__table__)
        .where(BackupMetadata.id == UUID(backup_id))
        .values(legal_hold_at=None, legal_hold_by=None, legal_hold_reason=None),
    )

    shredding = await shred(client, clock, bootstrap_key, "P-001")
    deleting = await client.delete(f"/backups/{backup_id}", headers=headers(admin))
    expiring = await apply_retention(client, admin, dry_run=False)

    for refused in (shredding, deleting, expiring):
        assert refused.status_code == 500, refused.text
        assert refused.json()["error"]["code"] == "INTEGRITY_FAILURE"
    assert services.key_store.private_key_path("P-001").exists()
    assert await objects_left(services, backup_id)
    tampering = await audit_entries(services.db, "TAMPERING_DETECTED")
    assert {entry.resource for entry in tampering} == {f"backup:{backup_id}"}
    assert await audit_entries(services.db, "RETENTION_DELETE") == []
