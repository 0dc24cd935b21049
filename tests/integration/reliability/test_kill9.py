"""Fault matrix, ``kill -9`` mid-operation (docs/reliability.md): a real gateway process is
killed with SIGKILL at a point it was made to hold deterministically — an upload body the
test keeps open, an object-store response held half-way through an object (a restore being
verified, a download being streamed), a key-store file system that hangs right after the
private key file was destroyed (a crypto-shred) — then restarted on the same socket. Each
cell asserts what the client saw, what recovery did, and the fault contract."""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from ssbg.domain.audit_events import key_version_resource
from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.certificates import verify_certificate
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.audit import entries_for
from tests.support.backups import get_record, leftover_under_prefix, objects_left
from tests.support.factories import create_api_key, headers
from tests.support.fault_contract import assert_fault_contract, marked_payload, plaintext_on_disk
from tests.support.gateway_kills import (
    api,
    download,
    error_code,
    gateway_for,
    key_version,
    request_restore,
    restart,
    restores_of,
    sealed_key_body,
    store_backup,
    trusted_signing_key,
    with_code,
)
from tests.support.holding_proxy import HoldingProxy
from tests.support.processes import MotoServer, wait_until
from tests.support.restores import backup_of

pytestmark = [pytest.mark.both_backends, pytest.mark.slow]

KIB = 1024
MIB = 1024 * KIB
LEASE_SECONDS = 2  # a dead gateway's PROCESSING / VERIFYING record is failed this soon
SEGMENT = 64 * KIB
# The store stalls this far into its responses: inside a 2 MiB object, and far enough for the
# gateway's decryption pipeline (a few chunks in flight) to have sent the client some plaintext.
OBJECT_SIZE = 2 * MIB
HOLD_AFTER = 768 * KIB


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"segment_size": SEGMENT, "backup_lease_seconds": LEASE_SECONDS}


@pytest.fixture
async def held_store(moto_server: MotoServer) -> AsyncIterator[HoldingProxy]:
    """The S3 server behind a proxy that can stall a response half-way (the gateway's only
    way to the store; the test's own services talk to the server directly)."""
    proxy = await HoldingProxy("127.0.0.1", moto_server.port).start()
    yield proxy
    await proxy.close()


def roots(settings: Settings, tmp_path: Path) -> list[Path]:
    return [settings.data_dir, tmp_path]


# -- upload -----------------------------------------------------------------------------------


async def test_kill9_mid_upload_fails_the_backup_at_restart_and_removes_the_partial_object(
    services: Services, settings: Settings, bootstrap_key: IssuedApiKey, tmp_path: Path
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    sent = marked_payload(2 * MIB)
    more = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield sent
        await more.wait()  # the body stays open: the gateway is caught mid-stream
        yield b"the rest"

    async with gateway_for(settings, tmp_path, lease_seconds=LEASE_SECONDS) as gateway:
        async with api(gateway) as http:
            upload = asyncio.create_task(
                http.post(
                    "/backups",
                    params={"classification": "INTERNAL", "source_system": "kill-9"},
                    headers={
                        **headers(operator),
                        "Content-Type": "application/octet-stream",
                        "Idempotency-Key": "nightly-kill-9",
                    },
                    content=body(),
                )
            )

            async def partial_written() -> bool:
                return await _partial_object(services, settings) is not None

            await wait_until(partial_written, within=30)
            backup_id = await _partial_object(services, settings)
            assert backup_id is not None
            # At the moment of the crash: a PROCESSING record, a partial object, no plaintext.
            assert (await get_record(services, backup_id)).status == "PROCESSING"  # type: ignore[union-attr]
            assert plaintext_on_disk(roots(settings, tmp_path), [sent]) == []

            gateway.kill()
            more.set()
            with pytest.raises(httpx.TransportError):
                await upload  # never a 201: the connection died without a response
            assert (await get_record(services, backup_id)).status == "PROCESSING"  # type: ignore[union-attr]

            await restart(gateway)

        async def failed() -> bool:
            record = await get_record(services, backup_id)
            return record is not None and record.status == "FAILED" and not record.cleanup_pending

        await wait_until(failed, within=30)
        async with api(gateway) as http:
            # The client retries with the same Idempotency-Key: a new backup, stored whole.
            retried = await http.post(
                "/backups",
                params={"classification": "INTERNAL", "source_system": "kill-9"},
                headers={
                    **headers(operator),
                    "Content-Type": "application/octet-stream",
                    "Idempotency-Key": "nightly-kill-9",
                },
                content=sent,
            )
            assert retried.status_code == 201, retried.text
            assert retried.json()["data"]["backup_id"] != str(backup_id)

            record = await get_record(services, backup_id)
            assert record is not None
            assert record.failure_reason == "INTERRUPTED"
            assert await objects_left(services, backup_id) == []
            entries = await entries_for(services.db, f"backup:{backup_id}")
            assert [(e.action, e.actor_id, e.details.get("reason")) for e in entries][-1] == (
                "BACKUP_FAILED",
                None,
                "INTERRUPTED",
            )
            await assert_fault_contract(
                services,
                payloads=[sent],
                roots=roots(settings, tmp_path),
                http=http,
                operator=operator,
                admin=admin,
            )


async def _partial_object(services: Services, settings: Settings) -> UUID | None:
    """The PROCESSING backup whose partial object is on disk already, if any."""
    async with services.db.transaction(write=False) as tx:
        statement = select(BackupMetadata.id).where(BackupMetadata.status == "PROCESSING")
        ids = list((await tx.session.execute(statement)).scalars().all())
    for backup_id in ids:
        files = leftover_under_prefix(settings.resolved_storage_path, backup_id)
        with contextlib.suppress(FileNotFoundError):
            if any(path.stat().st_size >= MIB for path in files):
                return backup_id
    return None


# -- verify and download: the object store stalls half-way through the object -------------


def behind(settings: Settings, proxy: HoldingProxy) -> Settings:
    """The gateway's settings: the store reached through ``proxy``."""
    return settings.model_copy(update={"s3_endpoint_url": proxy.url})


@pytest.mark.parametrize("storage_backend", ["s3"])
async def test_kill9_mid_verify_fails_the_restore_by_its_lease_and_keeps_the_backup_restorable(
    services: Services,
    settings: Settings,
    bootstrap_key: IssuedApiKey,
    held_store: HoldingProxy,
    tmp_path: Path,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    payload = marked_payload(OBJECT_SIZE)

    async with gateway_for(
        behind(settings, held_store), tmp_path, lease_seconds=LEASE_SECONDS
    ) as gateway:
        async with api(gateway) as http:
            backup_id = await store_backup(http, operator, payload)
            held_store.hold_after(HOLD_AFTER)
            restore = asyncio.create_task(request_restore(http, admin, backup_id))

            async def verifying() -> bool:
                rows = await restores_of(services, backup_id)
                return held_store.holding.is_set() and [r.status for r in rows] == ["VERIFYING"]

            await wait_until(verifying, within=30)
            gateway.kill()
            with pytest.raises(httpx.TransportError):
                await restore  # no response, so no token
            held_store.release()
            (dead,) = await restores_of(services, backup_id)
            assert (dead.status, dead.token_hash) == ("VERIFYING", None)

            await restart(gateway)

        async def failed() -> bool:
            (row,) = await restores_of(services, backup_id)
            return row.status == "FAILED"

        await wait_until(failed, within=30)
        async with api(gateway) as http:
            seen = await http.get(f"/restores/{dead.id}", headers=headers(admin))
            assert seen.status_code == 200, seen.text
            assert (seen.json()["data"]["status"], seen.json()["data"]["failure_reason"]) == (
                "FAILED",
                "INTERRUPTED",
            )
            assert seen.json()["data"]["download"] is None
            backup = await http.get(f"/backups/{backup_id}", headers=headers(admin))
            assert backup.json()["data"]["status"] == "ACTIVE"  # not suspect: nothing failed
            entries = await entries_for(services.db, f"restore:{dead.id}")
            assert [(e.action, e.actor_id, e.details.get("reason")) for e in entries][-1] == (
                "RESTORE_FAILED",
                None,
                "INTERRUPTED",
            )
            # The user asks again: a new restore, verified and downloaded whole.
            again = await request_restore(http, admin, backup_id)
            assert again.status_code == 201, again.text
            assert await download(http, admin, again.json()["data"]) == payload
            await assert_fault_contract(
                services,
                payloads=[payload],
                roots=roots(settings, tmp_path),
                http=http,
                operator=operator,
                admin=admin,
            )


@pytest.mark.parametrize("storage_backend", ["s3"])
async def test_kill9_mid_download_breaks_the_transfer_and_the_same_token_downloads_again(
    services: Services,
    settings: Settings,
    bootstrap_key: IssuedApiKey,
    held_store: HoldingProxy,
    tmp_path: Path,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    payload = marked_payload(OBJECT_SIZE)
    received = bytearray()

    async with gateway_for(
        behind(settings, held_store), tmp_path, lease_seconds=LEASE_SECONDS
    ) as gateway:
        async with api(gateway) as http:
            backup_id = await store_backup(http, operator, payload)
            restored = await request_restore(http, admin, backup_id)
            assert restored.status_code == 201, restored.text
            restore = restored.json()["data"]
            held_store.hold_after(HOLD_AFTER)
            async with http.stream(
                "GET",
                f"/restores/{restore['restore_id']}/download",
                headers={**headers(admin), "X-Restore-Token": restore["download"]["token"]},
            ) as response:
                assert response.status_code == 200
                assert response.headers["Content-Length"] == str(len(payload))

                async def read_all() -> None:
                    async for chunk in response.aiter_raw():
                        received.extend(chunk)

                reader = asyncio.create_task(read_all())

                async def stalled_mid_body() -> bool:
                    return held_store.holding.is_set() and len(received) >= SEGMENT

                await wait_until(stalled_mid_body, within=30)
                gateway.kill()
                # The body stops short of its Content-Length: an error, never a clean end.
                with pytest.raises(httpx.RemoteProtocolError, match="without sending complete"):
                    await reader
            held_store.release()
            await restart(gateway)

        assert 0 < len(received) < len(payload)
        assert bytes(received) == payload[: len(received)]
        async with api(gateway) as http:
            # The token is still valid: the same download again, whole this time.
            assert await download(http, admin, restore) == payload
            seen = await http.get(f"/restores/{restore['restore_id']}", headers=headers(admin))
            assert (seen.json()["data"]["status"], seen.json()["data"]["downloads"]) == (
                "COMPLETED",
                2,
            )
            entries = await entries_for(services.db, f"restore:{restore['restore_id']}")
            downloads = [e for e in entries if e.action == "RESTORE_DOWNLOAD"]
            assert [e.result for e in downloads] == ["SUCCESS", "SUCCESS"]
            unwraps = [
                e
                for e in await entries_for(services.db, f"backup:{backup_id}")
                if e.action == "KEY_UNWRAP" and e.details["restore_id"] == restore["restore_id"]
            ]
            assert len(unwraps) == 3  # the verification's, and one per download
            await assert_fault_contract(
                services,
                payloads=[payload],
                roots=roots(settings, tmp_path),
                http=http,
                operator=operator,
                admin=admin,
            )


# -- crypto-shred: the key store hangs right after the private key file was destroyed -----


@pytest.mark.own_key_store
async def test_kill9_mid_crypto_shred_is_completed_by_start_up_recovery(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    bootstrap_key: IssuedApiKey,
    key_store: FileKeyStore,
    tmp_path: Path,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    doomed_payload, kept_payload = marked_payload(64 * KIB), marked_payload(64 * KIB)
    doomed = await backup_of(client, operator, doomed_payload)  # sealed under P-001
    await services.keys.rotate(None, "P-001 is to be shredded", via="cli")
    # Another replica (this process's own gateway, with a key of its own: a key seen from a
    # new address would raise alert M4) restores it once: P-001 is in its memory now.
    elsewhere = await create_api_key(services, Role.ADMIN)
    earlier = await request_restore(client, elsewhere, doomed)
    assert earlier.status_code == 201, earlier.text
    private_key_file = key_store.private_key_path("P-001")
    key_material = sealed_key_body(private_key_file.read_bytes())
    hang = key_store.legacy_private_key_path("P-001")

    async with gateway_for(settings, tmp_path, lease_seconds=LEASE_SECONDS) as gateway:
        async with api(gateway) as http:
            kept = await store_backup(http, operator, kept_payload)  # sealed under P-002
            # The key store's file system hangs on the shred's second file (once the first,
            # the private key file, is overwritten and unlinked): the open of a FIFO at the
            # version's legacy key path blocks until a reader comes, and none does.
            os.mkfifo(hang, 0o600)
            first_code_at = datetime.now(UTC)
            shred = asyncio.create_task(
                http.post(
                    "/admin/keys/P-001/crypto-shred",
                    headers=with_code(bootstrap_key, first_code_at),
                    json={"confirmation": "DESTROY P-001", "reason": "end of retention"},
                )
            )

            async def key_file_destroyed() -> bool:
                record = await key_version(services, "P-001")
                return record.shred_started_at is not None and not private_key_file.exists()

            await wait_until(key_file_destroyed, within=30)
            gateway.kill()
            with pytest.raises(httpx.TransportError):
                await shred  # no answer: the client cannot take it as done
            hang.unlink()
            # The window the kill left: the key material is gone, the database not done yet —
            # but the shred is marked as begun, so recovery knows to finish it.
            window = await key_version(services, "P-001")
            assert (window.status, window.destruction_certificate) == ("RETIRED", None)
            assert (await get_record(services, doomed)).status == "ACTIVE"  # type: ignore[union-attr]
            # Meanwhile no replica unwraps with a key whose shred has begun, not even one that
            # still holds it in memory.
            assert error_code(await request_restore(client, elsewhere, doomed)) == (
                410,
                "CRYPTO_SHREDDED",
            )

            await restart(gateway)

        async with api(gateway) as http:
            # Start-up recovery finished the shred before the gateway answered anything.
            seen = await http.get("/admin/keys/P-001", headers=headers(bootstrap_key))
            assert seen.status_code == 200, seen.text
            assert seen.json()["data"]["status"] == "DESTROYED"
            certificate = seen.json()["data"]["destruction_certificate"]
            assert verify_certificate(certificate, trusted_signing_key(key_store)).valid
            record = await get_record(services, doomed)
            assert record is not None
            assert record.status == "CRYPTO_SHREDDED"
            assert certificate["backups"] == [
                {"backup_id": doomed, "ciphertext_sha512": record.checksum_ciphertext}
            ]
            assert (certificate["reason"], certificate["actor_id"]) == (
                "end of retention",
                str(bootstrap_key.record.id),
            )
            # Key material: no file left, no window of it anywhere in the key store.
            assert not private_key_file.exists()
            assert not hang.exists()
            assert key_store.public_key_path("P-001").exists()  # evidence of what was destroyed
            assert plaintext_on_disk([key_store.directory], [key_material]) == []
            entries = await entries_for(services.db, key_version_resource("P-001"))
            actions = [(e.action, e.actor_id) for e in entries]
            assert actions[-3:] == [
                ("CRYPTO_SHRED_START", bootstrap_key.record.id),
                ("KEY_DESTROY", None),  # by recovery
                ("CRYPTO_SHRED_COMPLETE", None),
            ]
            # The user's view: the shredded backup is gone for good, a retry is refused as
            # done, the backup under the active key is untouched.
            refused = await request_restore(http, admin, doomed)
            assert error_code(refused) == (410, "CRYPTO_SHREDDED")
            # A code of a later step than the first one (each step is accepted once).
            later = max(datetime.now(UTC), first_code_at + timedelta(seconds=30))
            retried = await http.post(
                "/admin/keys/P-001/crypto-shred",
                headers=with_code(bootstrap_key, later),
                json={"confirmation": "DESTROY P-001", "reason": "end of retention"},
            )
            assert error_code(retried) == (409, "INVALID_STATE_TRANSITION")
            restored = await request_restore(http, admin, kept)
            assert restored.status_code == 201, restored.text
            assert await download(http, admin, restored.json()["data"]) == kept_payload
            await assert_fault_contract(
                services,
                payloads=[doomed_payload, kept_payload],
                roots=roots(settings, tmp_path),
                http=http,
                operator=operator,
                admin=admin,
            )
