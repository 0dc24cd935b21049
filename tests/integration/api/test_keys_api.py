"""Key lifecycle over the API (SPEC §13.1): inventory, rotation, rewrap, crypto-shred."""

import asyncio
from uuid import UUID

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.audit_signing import public_key_from_pem
from ssbg.infrastructure.crypto.certificates import verify_certificate
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.backups import get_record, objects_left
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.keys import rewrap, rotate, shred
from tests.support.restores import backup_of, download, request_restore

pytestmark = [pytest.mark.both_backends, pytest.mark.own_key_store]


async def test_the_inventory_names_every_version_and_what_it_protects_never_key_material(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    for payload in (b"a" * 1000, b"b" * 24):
        await backup_of(client, operator, payload)

    listed = await client.get("/admin/keys", headers=headers(admin))
    one = await client.get("/admin/keys/P-001", headers=headers(admin))
    unknown = await client.get("/admin/keys/P-077", headers=headers(admin))
    refused = await client.get("/admin/keys", headers=headers(operator))

    assert listed.status_code == 200
    (version,) = listed.json()["data"]
    assert version["version"] == "P-001"
    assert version["status"] == "ACTIVE"
    assert version["backups"] == {"count": 2, "bytes": 1024}
    assert len(version["public_key_sha256"]) == 64
    assert one.json()["data"]["destruction_certificate"] is None
    assert "PRIVATE" not in listed.text + one.text
    assert "BEGIN" not in listed.text + one.text
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "NOT_FOUND")
    assert refused.status_code == 403


async def test_rotation_needs_mfa_then_new_backups_use_the_new_version_and_old_ones_restore(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    before = await backup_of(client, operator, b"sealed under P-001")

    without_mfa = await client.post(
        "/admin/keys/rotate", headers=headers(bootstrap_key), json={"reason": "yearly"}
    )
    rotated = await rotate(client, clock, bootstrap_key)
    after = await backup_of(client, operator, b"sealed under P-002")
    restored = await request_restore(client, admin, before)

    assert without_mfa.status_code == 401
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["data"] == {"version": "P-002", "status": "ACTIVE", "previous": "P-001"}
    listed = {
        key["version"]: key["status"]
        for key in (await client.get("/admin/keys", headers=headers(admin))).json()["data"]
    }
    assert listed == {"P-001": "RETIRED", "P-002": "ACTIVE"}
    assert (await get_record(services, after)).key_version == "P-002"  # type: ignore[union-attr]
    assert restored.status_code == 201, restored.text
    assert (await download(client, admin, restored.json()["data"])).content == (
        b"sealed under P-001"
    )
    assert services.key_store.private_key_path("P-002").exists()
    rotations = await audit_entries(services.db, "KEY_ROTATE")
    (entry,) = [e for e in rotations if e.details["to_version"] == "P-002"]
    assert (entry.details["from_version"], entry.details["to_version"]) == ("P-001", "P-002")
    assert entry.actor_id == bootstrap_key.record.id


async def test_of_two_rotations_racing_exactly_one_wins(
    services: Services, bootstrap_key: IssuedApiKey
) -> None:
    results = await asyncio.gather(
        services.keys.rotate(None, "race a", via="cli"),
        services.keys.rotate(None, "race b", via="cli"),
        return_exceptions=True,
    )

    wins = [result for result in results if not isinstance(result, BaseException)]
    losses = [result for result in results if isinstance(result, BaseException)]
    assert len(wins) == 1
    assert [type(loss).__name__ for loss in losses] == ["InvalidStateTransition"]
    views = await services.keys.list_keys()
    assert [view.record.status.value for view in views] == ["RETIRED", "ACTIVE"]


@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_rewrap_moves_every_backup_to_the_active_version_and_is_resumable(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backups = [await backup_of(client, operator, f"backup {n}".encode()) for n in range(3)]
    await rotate(client, clock, bootstrap_key)

    first = await rewrap(client, clock, bootstrap_key, "P-001")
    again = await rewrap(client, clock, bootstrap_key, "P-001")
    restored = await request_restore(client, admin, backups[1])

    assert first.status_code == 200, first.text
    assert first.json()["data"] == {"from_version": "P-001", "to_version": "P-002", "rewrapped": 3}
    assert again.json()["data"]["rewrapped"] == 0
    for backup_id in backups:
        record = await get_record(services, backup_id)
        assert record is not None
        assert (record.key_version, record.wrapped_dek_ref) == (
            "P-002",
            f"backups/{backup_id}/dek.P-002.wrapped",
        )
        left = sorted(name.rsplit("/", 1)[-1] for name in await objects_left(services, backup_id))
        assert left == ["data.enc", "dek.P-002.wrapped"]
    assert (await download(client, admin, restored.json()["data"])).content == b"backup 1"
    assert len(await audit_entries(services.db, "KEY_REWRAP")) == 3
    retired = (await client.get("/admin/keys/P-001", headers=headers(admin))).json()["data"]
    active = (await client.get("/admin/keys/P-002", headers=headers(admin))).json()["data"]
    assert retired["backups"] == {"count": 0, "bytes": 0}
    assert active["backups"] == {"count": 3, "bytes": 24}


async def test_rewrap_refuses_the_active_version_and_unknown_ones(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    active = await rewrap(client, clock, bootstrap_key, "P-001")
    unknown = await rewrap(client, clock, bootstrap_key, "P-009")

    assert (active.status_code, active.json()["error"]["code"]) == (
        409,
        "INVALID_STATE_TRANSITION",
    )
    assert unknown.status_code == 404


async def test_crypto_shred_refuses_the_active_version_a_wrong_confirmation_and_unknown_ones(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    active = await shred(client, clock, bootstrap_key, "P-001")
    await rotate(client, clock, bootstrap_key)
    wrong = await shred(client, clock, bootstrap_key, "P-001", confirmation="DESTROY P-002")
    missing = await client.post(
        "/admin/keys/P-001/crypto-shred",
        headers=headers(bootstrap_key),
        json={"reason": "no confirmation"},
    )
    unknown = await shred(client, clock, bootstrap_key, "P-009")

    assert (active.status_code, active.json()["error"]["code"]) == (
        409,
        "INVALID_STATE_TRANSITION",
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (422, "VALIDATION_ERROR")
    assert missing.status_code == 401  # MFA first: nothing is decided without it
    assert unknown.status_code == 404


async def test_crypto_shred_destroys_the_key_shreds_its_backups_and_certifies_it(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    doomed = [await backup_of(client, operator, f"2025 archive {n}".encode()) for n in range(3)]
    deleted = await backup_of(client, operator, b"deleted before")
    await client.delete(f"/backups/{deleted}", headers=headers(admin))
    await rotate(client, clock, bootstrap_key)
    kept = await backup_of(client, operator, b"under P-002")

    response = await shred(client, clock, bootstrap_key, "P-001")
    again = await shred(client, clock, bootstrap_key, "P-001")
    restore = await request_restore(client, admin, doomed[0])
    survivor = await request_restore(client, admin, kept)
    shown = (await client.get("/admin/keys/P-001", headers=headers(admin))).json()["data"]

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["version"], data["status"], data["backups_shredded"]) == (
        "P-001",
        "DESTROYED",
        4,
    )
    certificate = data["certificate"]
    assert shown["destruction_certificate"] == certificate
    trusted = public_key_from_pem(
        services.key_store.public_key_path(AUDIT_SIGNING_NAME).read_text()
    )
    assert verify_certificate(certificate, trusted).valid
    listed = {backup["backup_id"] for backup in certificate["backups"]}
    assert listed == {*doomed, deleted}
    assert not services.key_store.has_private_key("P-001")
    assert services.key_store.public_key_path("P-001").exists()
    for backup_id in doomed:
        record = await get_record(services, backup_id)
        assert record is not None
        assert record.status.value == "CRYPTO_SHREDDED"
    assert (again.status_code, again.json()["error"]["code"]) == (
        409,
        "INVALID_STATE_TRANSITION",
    )
    assert (restore.status_code, restore.json()["error"]["code"]) == (410, "CRYPTO_SHREDDED")
    assert survivor.status_code == 201
    actions = [e.action for e in await audit_entries(services.db) if "P-001" in e.resource]
    assert actions == [
        "KEY_ROTATE",  # P-001 created at bootstrap
        "POLICY_CHECK_ALLOW",  # P7
        "CRYPTO_SHRED_START",
        "KEY_DESTROY",
        "CRYPTO_SHRED_COMPLETE",
    ]
    (destroy,) = await audit_entries(services.db, "KEY_DESTROY")
    assert (certificate["audit_sequence"], certificate["audit_entry_hash"]) == (
        destroy.sequence_number,
        destroy.entry_hash,
    )
    shredded = [
        e
        for e in await audit_entries(services.db, "BACKUP_STATUS_CHANGE")
        if e.details.get("to_status") == "CRYPTO_SHREDDED"
    ]
    assert {UUID(e.resource.removeprefix("backup:")) for e in shredded} == {
        UUID(b) for b in [*doomed, deleted]
    }
    await assert_chain_valid(services.db)
