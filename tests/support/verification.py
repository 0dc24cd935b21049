"""Helpers for verification at rest and release: damage a stored backup, call the routes."""

from uuid import UUID

import httpx

from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.backups import get_record
from tests.support.clock import FixedClock
from tests.support.factories import headers

RELEASE_REASON = "INC-4711: object restored from the replica bucket"


async def record_of(services: Services, backup_id: str | UUID) -> BackupMetadata:
    record = await get_record(services, backup_id)
    assert record is not None
    return record


async def flip_byte(services: Services, backup_id: str | UUID) -> bytes:
    """Flip one bit in the middle of ``data.enc``; returns the original bytes (to put back)."""
    record = await record_of(services, backup_id)
    original = await services.object_store.read_bytes(record.storage_ref)
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x01
    await services.object_store.put_bytes(record.storage_ref, bytes(damaged))
    return original


async def put_back(services: Services, backup_id: str | UUID, original: bytes) -> None:
    record = await record_of(services, backup_id)
    await services.object_store.put_bytes(record.storage_ref, original)


async def verify(
    client: httpx.AsyncClient, caller: IssuedApiKey, backup_id: str | UUID
) -> httpx.Response:
    return await client.post(f"/backups/{backup_id}/verify", headers=headers(caller))


async def release(
    client: httpx.AsyncClient,
    caller: IssuedApiKey,
    backup_id: str | UUID,
    clock: FixedClock,
    *,
    reason: str = RELEASE_REASON,
) -> httpx.Response:
    """Release with a fresh TOTP code (its own 30-second step: a code is accepted once)."""
    return await client.post(
        f"/backups/{backup_id}/release",
        headers=headers(caller, totp_at=clock.advance(seconds=30)),
        json={"reason": reason},
    )
