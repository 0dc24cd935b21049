"""Key lifecycle beyond a single request: a shred cut short and completed at start-up, a shred
while a restore verifies, two gateways sharing one database, and the host's key commands."""

import asyncio
import json
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from ssbg.api.app import create_app
from ssbg.domain.enums import Role
from ssbg.domain.errors import CryptoShredded
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.audit_chain import cli_env, run_cli
from tests.support.backups import get_record
from tests.support.clock import FixedClock
from tests.support.factories import actor, create_api_key, headers
from tests.support.keys import rotate, shred
from tests.support.restores import backup_of, request_restore

pytestmark = [pytest.mark.both_backends, pytest.mark.own_key_store]


class KeyStoreThatDiesWhileShredding(FileKeyStore):
    """The process is killed right after it started destroying the key file."""

    def destroy_private_key(self, name: str) -> bool:
        raise OSError("killed")


async def test_a_shred_cut_short_is_completed_by_the_next_start(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    key_store: FileKeyStore,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    doomed = await backup_of(client, operator, b"doomed")
    await rotate(client, clock, bootstrap_key)
    dying = build_services(
        settings,
        clock=clock,
        key_store=KeyStoreThatDiesWhileShredding(key_store.directory, TEST_KEY_PASSWORD),
    )
    try:
        with pytest.raises(OSError, match="killed"):
            await dying.keys.crypto_shred(
                actor(bootstrap_key), "P-001", "DESTROY P-001", "end of retention"
            )
    finally:
        await dying.close()
    half = await get_record(services, doomed)

    resumed = await services.keys.resume_interrupted_shreds()
    again = await services.keys.resume_interrupted_shreds()

    assert half is not None
    assert half.status.value == "ACTIVE"  # only CRYPTO_SHRED_START had committed
    assert resumed == ["P-001"]
    assert again == []
    view = await services.keys.get_key("P-001")
    assert view.record.status.value == "DESTROYED"
    assert view.record.destruction_certificate is not None
    assert view.record.destruction_certificate["reason"] == "end of retention"
    assert not key_store.has_private_key("P-001")
    record = await get_record(services, doomed)
    assert record is not None
    assert record.status.value == "CRYPTO_SHREDDED"
    assert [e.action for e in await audit_entries(services.db, "CRYPTO_SHRED_START")] == [
        "CRYPTO_SHRED_START"
    ]
    await assert_chain_valid(services.db)


async def test_a_restore_verifying_while_its_key_is_shredded_fails_and_releases_nothing(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, operator, b"x" * 300_000)
    await rotate(client, clock, bootstrap_key)
    reading, release = asyncio.Event(), asyncio.Event()
    original = services.object_store.read_stream

    def gated(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        async def stream():  # type: ignore[no-untyped-def]
            reading.set()
            await release.wait()  # the verify pass is under way when the shred happens
            async for chunk in original(*args, **kwargs):  # type: ignore[arg-type]
                yield chunk

        return stream()

    services.object_store.read_stream = gated  # type: ignore[method-assign]
    restore = asyncio.create_task(request_restore(client, admin, backup_id))
    await reading.wait()
    shredded = await shred(client, clock, bootstrap_key, "P-001")
    release.set()
    response = await restore

    assert shredded.status_code == 200, shredded.text
    assert (response.status_code, response.json()["error"]["code"]) == (410, "CRYPTO_SHREDDED")
    assert "download" not in response.text
    (failed,) = await audit_entries(services.db, "RESTORE_FAILED")
    assert failed.details["reason"] == "CRYPTO_SHREDDED"
    assert await audit_entries(services.db, "RESTORE_COMPLETE") == []


async def test_two_gateways_on_one_database_see_each_others_rotation_and_shred(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    key_store: FileKeyStore,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    other = build_services(
        settings, clock=clock, key_store=FileKeyStore(key_store.directory, TEST_KEY_PASSWORD)
    )
    try:
        old = await backup_of(client, operator, b"before")
        # The other gateway has unwrapped with P-001 already: its key is in its memory.
        assert (await request_restore(client, admin, old)).status_code == 201
        await other.keys.rotate(actor(bootstrap_key), "rotated on the other gateway")
        new = await backup_of(client, operator, b"after, on this gateway")
        await other.keys.crypto_shred(actor(bootstrap_key), "P-001", "DESTROY P-001", "done")
        transport = httpx.ASGITransport(app=create_app(services=other))
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as http:
            refused = await request_restore(http, admin, old)
        with pytest.raises(CryptoShredded):
            await other.restores.request_restore(actor(admin), UUID(old), "x" * 12)
    finally:
        await other.close()

    assert (await get_record(services, new)).key_version == "P-002"  # type: ignore[union-attr]
    assert (refused.status_code, refused.json()["error"]["code"]) == (410, "CRYPTO_SHREDDED")


async def test_the_host_lists_rotates_and_verifies_a_certificate_offline(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    key_store: FileKeyStore,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    env = cli_env(settings)
    rotated = await run_cli(["keys", "rotate", "--reason", "from the host", "--json"], env)
    listed = await run_cli(["keys", "list", "--json"], env)
    shredded = await shred(client, clock, bootstrap_key, "P-001")
    certificate = tmp_path / "certificate.json"
    certificate.write_text(json.dumps(shredded.json()["data"]["certificate"]))
    trusted = str(key_store.public_key_path(AUDIT_SIGNING_NAME))
    valid = await run_cli(
        ["keys", "verify-certificate", str(certificate), "--trusted-key", trusted, "--json"]
    )
    forged = json.loads(certificate.read_text())
    forged["reason"] = "a routine test"
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    invalid = await run_cli(
        ["keys", "verify-certificate", str(tmp_path / "forged.json"), "--trusted-key", trusted]
    )
    wrong_key = await run_cli(
        [
            "keys",
            "verify-certificate",
            str(certificate),
            "--trusted-key",
            str(key_store.public_key_path("P-002")),
            "--json",
        ]
    )

    assert rotated.exit_code == 0, rotated.stdout
    assert rotated.json() == {"version": "P-002", "status": "ACTIVE", "previous": "P-001"}
    statuses = {key["version"]: key["status"] for key in listed.json()["keys"]}
    assert statuses == {"P-001": "RETIRED", "P-002": "ACTIVE"}
    rotation = [e for e in await audit_entries(services.db, "KEY_ROTATE") if e.details.get("via")]
    assert [(e.actor_id, e.details["via"]) for e in rotation] == [(None, "cli")]
    assert (valid.exit_code, valid.json()["valid"]) == (0, True)
    assert valid.json()["key_version"] == "P-001"
    assert invalid.exit_code == 1
    assert (wrong_key.exit_code, wrong_key.json()["reason"]) == (1, "UNTRUSTED_KEY")


async def test_the_evidence_bundle_carries_the_certificate_and_offline_checks_it(
    client: httpx.AsyncClient,
    services: Services,
    key_store: FileKeyStore,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    from ssbg.services.audit_bundle_verification import verify_bundle

    operator = await create_api_key(services, Role.OPERATOR)
    auditor = await create_api_key(services, Role.AUDITOR)
    await backup_of(client, operator, b"archive")
    await rotate(client, clock, bootstrap_key)
    certificate = (await shred(client, clock, bootstrap_key, "P-001")).json()["data"]["certificate"]
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_bytes((await client.get("/audit/export", headers=headers(auditor))).content)
    trusted = [key_store.public_key_path(AUDIT_SIGNING_NAME).read_text()]

    genuine = verify_bundle(bundle, trusted)
    lines = [json.loads(line) for line in bundle.read_bytes().splitlines()]
    carried = [dict(line["certificate"]) for line in lines if line["type"] == "certificate"]
    for line in lines:
        if line["type"] == "certificate":
            line["certificate"]["backups"] = []  # hide which backups were destroyed
    forged = tmp_path / "forged.jsonl"
    forged.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    tampered = verify_bundle(forged, trusted)

    assert carried == [certificate]
    assert genuine.valid
    assert genuine.certificates_verified == 1
    assert not tampered.valid
    assert tampered.result.reason is not None
    assert tampered.result.reason.value == "CERTIFICATE_INVALID"


async def test_a_shred_marked_in_the_database_behind_the_gateway_destroys_nothing(
    client: httpx.AsyncClient,
    services: Services,
    key_store: FileKeyStore,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    from sqlalchemy import update

    from ssbg.domain.errors import TamperedRow
    from ssbg.infrastructure.db.models import KeyVersion
    from tests.support.audit_chain import execute

    await rotate(client, clock, bootstrap_key)
    await execute(
        services,
        update(KeyVersion.__table__)
        .where(KeyVersion.version == "P-001")
        .values(shred_started_at=clock.now(), shred_reason="forged"),
    )

    with pytest.raises(TamperedRow):
        await services.keys.resume_interrupted_shreds()
    await services.start_up.run(replica="test")  # the gateway still starts, and logs it

    assert key_store.has_private_key("P-001")
    starts = await audit_entries(services.db, "SYSTEM_START")
    assert starts[-1].details["replica"] == "test"
