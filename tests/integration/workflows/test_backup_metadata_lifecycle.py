"""The story's acceptance criteria end to end, local store and S3; what the database keeps
(records, transitions, audit entries, concurrent uploads) on SQLite and PostgreSQL, the
ciphertext attacks (the database plays no part in them) on SQLite.

1. An accepted backup gets a stable identifier tied to persisted metadata, and 201 only after
   the ciphertext is durably stored and the ACTIVE record and its audit entries committed.
2. Lifecycle changes are stored through the state machine and readable.
3. Checkpoints leave audit entries; a failure never leaves a false success.
"""

import asyncio
import hashlib
import os
import secrets
import tempfile
import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from ssbg.domain.enums import Role
from ssbg.domain.errors import IntegrityFailure
from ssbg.infrastructure.db.models import BackupStatusTransition
from ssbg.infrastructure.storage.s3 import S3ObjectStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, entries_for
from tests.support.backups import decrypt_stored, get_record, upload
from tests.support.factories import create_api_key, headers

pytestmark = pytest.mark.parametrize("storage_backend", ["local", "s3"])
MIB = 1024 * 1024


@pytest.fixture
async def operator(services: Services) -> IssuedApiKey:
    return await create_api_key(services, Role.OPERATOR)


@pytest.mark.both_backends
async def test_an_accepted_backup_is_durably_stored_and_tied_to_its_metadata(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    payload = os.urandom(2 * MIB + 12345)

    response = await upload(client, operator, payload)

    assert response.status_code == 201
    backup_id = UUID(response.json()["data"]["backup_id"])
    record = await get_record(services, backup_id)
    assert record is not None
    assert record.status == "ACTIVE"
    assert record.completed_at is not None
    assert record.lease_expires_at is None
    stored = await services.object_store.read_bytes(record.storage_ref)
    assert len(stored) == record.encrypted_size
    assert hashlib.sha512(stored).hexdigest() == record.checksum_ciphertext
    assert await decrypt_stored(services, record) == payload
    assert hashlib.sha512(payload).hexdigest() == record.checksum_plaintext
    assert payload[:4096] not in stored
    later = await client.get(f"/backups/{backup_id}", headers=headers(operator))
    assert later.json()["data"] == response.json()["data"]


@pytest.mark.both_backends
async def test_every_transition_is_stored_with_its_audit_entry(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    backup_id = (await upload(client, operator, b"lifecycle")).json()["data"]["backup_id"]
    admin = await create_api_key(services, Role.ADMIN)
    await client.delete(f"/backups/{backup_id}", headers=headers(admin))

    async with services.db.transaction(write=False) as tx:
        transitions = (
            (
                await tx.session.execute(
                    select(BackupStatusTransition)
                    .where(BackupStatusTransition.backup_id == UUID(backup_id))
                    .order_by(BackupStatusTransition.sequence)
                )
            )
            .scalars()
            .all()
        )
    entries = await entries_for(services.db, f"backup:{backup_id}")

    assert [(t.sequence, t.from_status, t.to_status) for t in transitions] == [
        (1, None, "PROCESSING"),
        (2, "PROCESSING", "ACTIVE"),
        (3, "ACTIVE", "DELETED"),
    ]
    by_action = {e.action: e for e in entries}
    for transition, action in zip(
        transitions, ("BACKUP_START", "BACKUP_COMPLETE", "BACKUP_DELETE"), strict=True
    ):
        entry = by_action[action]
        assert entry.details["to_status"] == transition.to_status
        assert entry.occurred_at == transition.at
    await assert_chain_valid(services.db)


async def test_plaintext_never_reaches_disk_or_the_store(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    marker = f"SSBG-PLAINTEXT-MARKER-{secrets.token_hex(12)}".encode()
    block = marker + os.urandom(64 * 1024 - len(marker))
    payload = block * 80  # 5 MiB, the marker every 64 KiB
    started = time.time()

    response = await upload(client, operator, payload)

    assert response.status_code == 201
    roots = [
        services.settings.data_dir,
        services.settings.resolved_storage_path,
        Path(tempfile.gettempdir()),
    ]
    database = services.settings.resolved_database_url
    if database.startswith("sqlite"):
        roots.append(Path(database.split("///", 1)[1]).parent)
    hits = [str(path) for path in _recent_files(roots, started) if _contains(path, marker)]
    assert hits == []
    if isinstance(services.object_store, S3ObjectStore):
        client_s3 = await services.object_store.client()
        listed = await client_s3.list_objects_v2(Bucket=services.object_store.bucket)
        for item in listed.get("Contents", []):
            assert marker not in await services.object_store.read_bytes(item["Key"])


def _recent_files(roots: list[Path], since: float) -> list[Path]:
    """Files under ``roots`` changed since ``since``. Other processes (parallel test workers)
    create and remove files in the temporary directory during the walk: ``os.walk`` skips a
    directory that vanished where ``Path.rglob`` would raise."""
    found: set[Path] = set()
    for root in roots:
        for directory, _subdirectories, names in os.walk(root):
            for name in names:
                path = Path(directory, name)
                try:
                    if (
                        path.is_file()
                        and not path.is_symlink()
                        and path.stat().st_mtime >= since - 1
                    ):
                        found.add(path)
                except OSError:
                    continue
    return sorted(found)


def _contains(path: Path, marker: bytes) -> bool:
    try:
        with path.open("rb") as handle:
            tail = b""
            while chunk := handle.read(MIB):
                if marker in tail + chunk:
                    return True
                tail = chunk[-len(marker) :]
    except OSError:
        return False
    return False


async def _two_backups(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> tuple[object, object]:
    first = await upload(client, operator, os.urandom(2 * MIB + 100))
    second = await upload(client, operator, os.urandom(2 * MIB + 100))
    a = await get_record(services, first.json()["data"]["backup_id"])
    b = await get_record(services, second.json()["data"]["backup_id"])
    return a, b


SEGMENT_BYTES = MIB + 16


@pytest.mark.parametrize(
    "attack",
    [
        "flip a byte",
        "truncate the last segment",
        "truncate at a segment boundary",
        "reorder two segments",
        "swap data.enc between backups",
        "swap dek.wrapped between backups",
        "swap both objects between backups",
    ],
)
async def test_tampered_truncated_reordered_or_swapped_ciphertext_fails(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey, attack: str
) -> None:
    a, b = await _two_backups(client, services, operator)
    store = services.object_store
    data_a = await store.read_bytes(a.storage_ref)  # type: ignore[attr-defined]
    data_b = await store.read_bytes(b.storage_ref)  # type: ignore[attr-defined]
    dek_a = await store.read_bytes(a.wrapped_dek_ref)  # type: ignore[attr-defined]
    dek_b = await store.read_bytes(b.wrapped_dek_ref)  # type: ignore[attr-defined]
    header = len(data_a) - 2 * SEGMENT_BYTES - (100 + 16)
    body = data_a[header:]
    segments = [body[i : i + SEGMENT_BYTES] for i in range(0, len(body), SEGMENT_BYTES)]
    replaced = {
        "flip a byte": {"data": data_a[:5000] + bytes([data_a[5000] ^ 0x80]) + data_a[5001:]},
        "truncate the last segment": {"data": data_a[:-1]},
        "truncate at a segment boundary": {"data": data_a[: header + 2 * SEGMENT_BYTES]},
        "reorder two segments": {
            "data": data_a[:header] + segments[1] + segments[0] + b"".join(segments[2:])
        },
        "swap data.enc between backups": {"data": data_b},
        "swap dek.wrapped between backups": {"dek": dek_b},
        "swap both objects between backups": {"data": data_b, "dek": dek_b},
    }[attack]
    assert (data_a, dek_a) != (replaced.get("data", data_a), replaced.get("dek", dek_a))
    if "data" in replaced:
        await store.put_bytes(a.storage_ref, replaced["data"])  # type: ignore[attr-defined]
    if "dek" in replaced:
        await store.put_bytes(a.wrapped_dek_ref, replaced["dek"])  # type: ignore[attr-defined]

    with pytest.raises(IntegrityFailure):
        await decrypt_stored(services, a)  # type: ignore[arg-type]
    assert len(await decrypt_stored(services, b)) == 2 * MIB + 100  # type: ignore[arg-type]


@pytest.mark.both_backends
async def test_24_concurrent_uploads_are_all_stored_and_the_chain_holds(
    client: httpx.AsyncClient, services: Services
) -> None:
    operators = [await create_api_key(services, Role.OPERATOR) for _ in range(4)]
    payloads = [os.urandom(200_000 + 997 * index) for index in range(24)]

    responses = await asyncio.gather(
        *(
            upload(client, operators[index % 4], payload, mode="raw" if index % 2 else "multipart")
            for index, payload in enumerate(payloads)
        )
    )

    assert [r.status_code for r in responses] == [201] * 24
    ids = {r.json()["data"]["backup_id"] for r in responses}
    assert len(ids) == 24
    for response, payload in zip(responses, payloads, strict=True):
        record = await get_record(services, response.json()["data"]["backup_id"])
        assert record is not None
        assert record.status == "ACTIVE"
        assert record.checksum_plaintext == hashlib.sha512(payload).hexdigest()
    entries = await assert_chain_valid(services.db)
    assert sum(e.action == "BACKUP_COMPLETE" for e in entries) == 24


@pytest.mark.both_backends
async def test_backup_identifiers_are_stable(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    response = await upload(client, operator, b"stable")
    backup_id = response.json()["data"]["backup_id"]

    listed = await client.get("/backups", headers=headers(operator))
    fetched = await client.get(f"/backups/{backup_id}", headers=headers(operator))

    assert UUID(backup_id).version == 4
    assert listed.json()["data"][0]["backup_id"] == backup_id
    assert fetched.json()["data"]["backup_id"] == backup_id
    assert (await get_record(services, backup_id)) is not None
