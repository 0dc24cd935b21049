"""Helpers to submit backups through the HTTP API and inspect what they left behind."""

import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Literal
from uuid import UUID

import httpx

from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.infrastructure.storage.layout import backup_prefix, data_key, wrapped_dek_key
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.factories import headers

Mode = Literal["multipart", "raw"]


async def upload(
    client: httpx.AsyncClient,
    issued: IssuedApiKey,
    payload: bytes | AsyncIterator[bytes] | Iterable[bytes],
    *,
    mode: Mode = "multipart",
    classification: str | None = "INTERNAL",
    source_system: str = "db-prod-1",
    description: str | None = None,
    filename: str | None = "dump.sql",
    content_type: str = "application/octet-stream",
    idempotency_key: str | None = None,
    extra_headers: dict[str, str] | None = None,
    compression: str | None = None,
    compression_level: int | None = None,
) -> httpx.Response:
    request_headers = {**headers(issued), **(extra_headers or {})}
    if idempotency_key is not None:
        request_headers["Idempotency-Key"] = idempotency_key
    fields = {
        "classification": classification,
        "source_system": source_system,
        "description": description,
        "compression": compression,
        "compression_level": None if compression_level is None else str(compression_level),
    }
    if mode == "multipart":
        if not isinstance(payload, bytes):
            raise TypeError("multipart uploads take bytes; use multipart_body() for streams")
        return await client.post(
            "/backups",
            headers=request_headers,
            data={k: v for k, v in fields.items() if v is not None},
            files={"file": (filename, payload, content_type)},
        )
    params = {k: v for k, v in {**fields, "filename": filename}.items() if v is not None}
    request_headers["Content-Type"] = content_type
    return await client.post("/backups", headers=request_headers, params=params, content=payload)


def multipart_body(
    fields: dict[str, str], payload_chunks: Iterable[bytes], *, boundary: str = "ssbgboundary42"
) -> tuple[str, Iterable[bytes]]:
    """A hand-made streaming multipart body (fields first, ``file`` last) and its type."""

    def body() -> Iterable[bytes]:
        for name, value in fields.items():
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            ).encode()
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="stream.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        yield from payload_chunks
        yield f"\r\n--{boundary}--\r\n".encode()

    return f"multipart/form-data; boundary={boundary}", body()


async def get_record(services: Services, backup_id: UUID | str) -> BackupMetadata | None:
    async with services.db.transaction(write=False) as tx:
        return await tx.backups.get_or_none(UUID(str(backup_id)))


async def only_record(services: Services) -> BackupMetadata:
    """The single backup record in the database (for requests that did not answer with one)."""
    from sqlalchemy import select

    async with services.db.transaction(write=False) as tx:
        rows = (await tx.session.execute(select(BackupMetadata))).scalars().all()
    assert len(rows) == 1, f"expected one backup record, found {len(rows)}"
    return rows[0]


async def count_records(services: Services) -> int:
    from sqlalchemy import func, select

    async with services.db.transaction(write=False) as tx:
        return int((await tx.session.execute(select(func.count(BackupMetadata.id)))).scalar_one())


async def stored_objects(store: ObjectStore, backup_id: UUID | str) -> dict[str, bool]:
    identifier = UUID(str(backup_id))
    return {
        "data.enc": await store.exists(data_key(identifier)),
        "dek.wrapped": await store.exists(wrapped_dek_key(identifier)),
    }


def local_files_under(root: Path) -> list[Path]:
    """Every file (temporary ones included) under a local store's root."""
    if not root.exists():
        return []
    return [path for path in root.rglob("*") if path.is_file()]


def leftover_under_prefix(root: Path, backup_id: UUID | str) -> list[Path]:
    directory = root / backup_prefix(UUID(str(backup_id))).rstrip("/")
    return local_files_under(directory) if directory.is_dir() else []


def random_payload(size: int) -> bytes:
    return os.urandom(size)


async def decrypt_stored(services: Services, record: BackupMetadata) -> bytes:
    """Decrypt a backup's stored objects the way a restore would, verifying everything."""
    from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
    from ssbg.infrastructure.crypto.object_format import dek_resolver_for

    wrapped = await services.object_store.read_bytes(record.wrapped_dek_ref)
    private_key = services.key_store.load_private_key(record.key_version)
    decryptor = ObjectDecryptor(
        dek_resolver_for(wrapped, private_key, expected_key_version=record.key_version),
        expected_backup_id=record.id,
    )
    out = bytearray()
    async for chunk in services.object_store.read_stream(record.storage_ref, 1024 * 1024):
        for plaintext in decryptor.feed(chunk):
            out += plaintext
    out += decryptor.finish()
    return bytes(out)


async def objects_left(services: Services, backup_id: UUID | str) -> list[str]:
    """Everything a backup still has in the store: objects, temporary files, and (S3)
    incomplete multipart uploads."""
    from ssbg.infrastructure.storage.s3 import S3ObjectStore

    identifier = UUID(str(backup_id))
    store = services.object_store
    if isinstance(store, S3ObjectStore):
        client = await store.client()
        prefix = backup_prefix(identifier)
        listed = await client.list_objects_v2(Bucket=store.bucket, Prefix=prefix)
        uploads = await client.list_multipart_uploads(Bucket=store.bucket, Prefix=prefix)
        return [item["Key"] for item in listed.get("Contents", [])] + [
            f"upload:{item['Key']}" for item in uploads.get("Uploads", [])
        ]
    return [
        str(path)
        for path in leftover_under_prefix(services.settings.resolved_storage_path, identifier)
    ]
