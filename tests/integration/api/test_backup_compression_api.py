"""Compression through the API (SPEC §13.4): ``compression=zstd`` stores a format version 2
object with compressed segments (raw where they do not shrink), records ``compression`` and
``stored_size``, and a restore returns the original bytes — on SQLite and PostgreSQL, on the
local store and S3. Bad compression input is a 422 that stores nothing."""

import gzip
import hashlib
import os
import random
import struct

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.object_format import ObjectHeader
from ssbg.infrastructure.crypto.object_format_v2 import FLAG_RAW, FLAG_ZSTD, FRAME
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.backups import count_records, get_record, local_files_under, upload
from tests.support.factories import create_api_key, headers
from tests.support.restores import download, request_restore
from tests.support.verification import flip_byte, verify

MIB = 1024 * 1024


def sql_dump(size: int, seed: int = 7) -> bytes:
    """A plausible SQL dump: INSERT lines with varied rows (compresses about 5:1 with zstd)."""
    rows = random.Random(seed)
    lines, total = [], 0
    while total < size:
        line = (
            f"INSERT INTO orders VALUES ({rows.randint(1, 10**9)}, 'customer "  # noqa: S608 (test data)
            f"{rows.randint(1, 50_000)}', {rows.randint(1, 10**6) / 100:.2f}, "
            f"'{rows.choice(['NEW', 'PAID', 'SHIPPED'])}');\n"
        ).encode()
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


def segment_flags(data_enc: bytes) -> list[int]:
    """The flag of every segment of a stored version 2 object (parsed from its frames)."""
    header, offset = ObjectHeader.parse(data_enc)
    assert header.format_version == 2
    flags = []
    while offset < len(data_enc):
        flag, length = FRAME.unpack_from(data_enc, offset)
        flags.append(flag)
        offset += FRAME.size + length
    assert offset == len(data_enc)
    return flags


async def restored(client: httpx.AsyncClient, services: Services, backup_id: str) -> bytes:
    admin = await create_api_key(services, Role.ADMIN)
    restore = await request_restore(client, admin, backup_id)
    assert restore.status_code == 201, restore.text
    return (await download(client, admin, restore.json()["data"])).content


@pytest.fixture
async def operator(services: Services) -> IssuedApiKey:
    return await create_api_key(services, Role.OPERATOR)


@pytest.mark.both_backends
@pytest.mark.parametrize(("mode", "storage_backend"), [("multipart", "local"), ("raw", "s3")])
async def test_a_compressed_backup_is_smaller_and_restores_the_original_bytes(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey, mode: str
) -> None:
    payload = sql_dump(2 * MIB + 12_345)

    response = await upload(client, operator, payload, mode=mode, compression="zstd")  # type: ignore[arg-type]

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["compression"] == "zstd"
    assert data["original_size"] == len(payload)
    assert data["checksum_plaintext"] == hashlib.sha512(payload).hexdigest()
    assert data["stored_size"] < len(payload) // 3
    assert data["stored_size"] < data["encrypted_size"] < len(payload) // 3
    record = await get_record(services, data["backup_id"])
    assert record is not None
    assert (record.format_version, record.compression, record.stored_size) == (
        2,
        "zstd",
        data["stored_size"],
    )
    stored = await services.object_store.read_bytes(record.storage_ref)
    assert hashlib.sha512(stored).hexdigest() == data["checksum_ciphertext"]
    assert segment_flags(stored) == [FLAG_ZSTD] * 3
    assert await restored(client, services, data["backup_id"]) == payload
    start = (await audit_entries(services.db, "BACKUP_START"))[-1]
    assert (start.details["compression"], start.details["compression_level"]) == ("zstd", 3)
    stored_entry = (await audit_entries(services.db, "BACKUP_STORED"))[-1]
    assert stored_entry.details["stored_size"] == data["stored_size"]
    assert stored_entry.details["format_version"] == 2


@pytest.mark.both_backends
@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_an_already_compressed_payload_is_stored_raw_per_segment_and_still_says_zstd(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    payload = gzip.compress(os.urandom(MIB) + sql_dump(MIB), compresslevel=6)

    response = await upload(client, operator, payload, mode="raw", compression="zstd")

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["compression"] == "zstd"
    assert data["stored_size"] == data["original_size"] == len(payload)
    record = await get_record(services, data["backup_id"])
    assert record is not None
    stored = await services.object_store.read_bytes(record.storage_ref)
    assert set(segment_flags(stored)) == {FLAG_RAW}
    assert await restored(client, services, data["backup_id"]) == payload


@pytest.mark.both_backends
async def test_a_payload_that_is_partly_compressible_mixes_both_kinds_of_segment(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    payload = sql_dump(MIB) + os.urandom(MIB) + sql_dump(MIB // 2, seed=8)

    response = await upload(
        client, operator, payload, mode="raw", compression="zstd", compression_level=9
    )

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    record = await get_record(services, data["backup_id"])
    assert record is not None
    stored = await services.object_store.read_bytes(record.storage_ref)
    assert segment_flags(stored) == [FLAG_ZSTD, FLAG_RAW, FLAG_ZSTD]
    assert MIB < data["stored_size"] < 2 * MIB
    assert await restored(client, services, data["backup_id"]) == payload
    start = (await audit_entries(services.db, "BACKUP_START"))[-1]
    assert start.details["compression_level"] == 9


@pytest.mark.both_backends
async def test_without_compression_the_object_stays_version_1_at_its_own_size(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    payload = sql_dump(300_000)

    response = await upload(client, operator, payload, mode="raw")

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert (data["compression"], data["stored_size"]) == ("none", len(payload))
    record = await get_record(services, data["backup_id"])
    assert record is not None
    assert record.format_version == 1
    stored = await services.object_store.read_bytes(record.storage_ref)
    assert struct.unpack_from(">H", stored, 8) == (1,)
    listed = await client.get("/backups", headers=headers(operator))
    assert listed.json()["data"][0]["compression"] == "none"


@pytest.mark.parametrize(
    ("mode", "fields", "field"),
    [
        ("raw", {"compression": "gzip"}, "compression"),
        ("multipart", {"compression": "gzip"}, "compression"),
        ("raw", {"compression": "ZSTD "}, "compression"),
        ("raw", {"compression": "zstd", "compression_level": "20"}, "compression_level"),
        ("raw", {"compression": "zstd", "compression_level": "0"}, "compression_level"),
        ("multipart", {"compression": "zstd", "compression_level": "three"}, "compression_level"),
        ("raw", {"compression_level": "5"}, "compression_level"),
        ("multipart", {"compression": "none", "compression_level": "5"}, "compression_level"),
    ],
)
async def test_bad_compression_input_is_a_422_and_stores_nothing(
    client: httpx.AsyncClient,
    services: Services,
    operator: IssuedApiKey,
    fields: dict[str, str],
    field: str,
    mode: str,
) -> None:
    request_headers = headers(operator)
    base = {"classification": "INTERNAL", "source_system": "db-prod-1"}
    if mode == "multipart":
        response = await client.post(
            "/backups",
            headers=request_headers,
            data={**base, **fields},
            files={"file": ("dump.sql", b"payload", "application/octet-stream")},
        )
    else:
        response = await client.post(
            "/backups",
            headers={**request_headers, "Content-Type": "application/octet-stream"},
            params={**base, **fields},
            content=b"payload",
        )

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    assert await count_records(services) == 0
    assert local_files_under(services.settings.resolved_storage_path / "backups") == []
    assert await audit_entries(services.db, "BACKUP_START") == []


@pytest.mark.both_backends
async def test_the_same_idempotency_key_with_another_compression_is_a_mismatch(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    payload = sql_dump(100_000)
    first = await upload(
        client, operator, payload, mode="raw", compression="zstd", idempotency_key="nightly-1"
    )
    assert first.status_code == 201, first.text

    again = await upload(
        client, operator, payload, mode="raw", compression="zstd", idempotency_key="nightly-1"
    )
    other = await upload(client, operator, payload, mode="raw", idempotency_key="nightly-1")

    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert other.json()["error"]["details"]["mismatch"] == "fields"
    assert await count_records(services) == 1


@pytest.mark.both_backends
async def test_a_compressed_backup_verifies_at_rest_and_a_damaged_one_is_quarantined(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    """Verification at rest reads version 2 through the shared decryption path: every segment
    authenticated and decompressed, both checksums of the original bytes compared."""
    admin = await create_api_key(services, Role.ADMIN)
    payload = sql_dump(2 * MIB) + os.urandom(MIB // 2)
    stored = await upload(client, operator, payload, mode="raw", compression="zstd")
    backup_id = stored.json()["data"]["backup_id"]

    intact = await verify(client, admin, backup_id)
    await flip_byte(services, backup_id)
    damaged = await verify(client, admin, backup_id)

    assert intact.status_code == 200, intact.text
    assert (intact.json()["data"]["valid"], intact.json()["data"]["result"]) == (True, "VALID")
    assert damaged.status_code == 200, damaged.text
    assert (damaged.json()["data"]["valid"], damaged.json()["data"]["status"]) == (
        False,
        "QUARANTINED",
    )
    [first, _second] = await audit_entries(services.db, "BACKUP_VERIFY")
    assert first.details["verified_bytes"] == len(payload)
