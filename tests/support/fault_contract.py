"""The one contract every cell of the fault-injection matrix asserts (docs/reliability.md).

After a fault, and once the fault is gone:

1. the client got a clear error (the cell asserts its status and SPEC §4 code itself);
2. no backup is ``ACTIVE`` without both of its objects in the store;
3. no plaintext byte of any payload sent is on disk anywhere under the watched roots
   (database files and their WAL, object store, key store, temporary directories);
4. the audit chain is valid (independently recomputed here, and by the gateway itself);
5. the gateway serves again: a new backup is stored and restored byte for byte.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select

from ssbg.domain.enums import BackupStatus
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid
from tests.support.backups import stored_objects
from tests.support.factories import headers

MARKER_SIZE = 48
_READ_SIZE = 1024 * 1024


def marked_payload(size: int) -> bytes:
    """Random bytes: any 48-byte window of them found on disk is a plaintext leak."""
    return os.urandom(size)


def _markers(payload: bytes) -> list[bytes]:
    if len(payload) <= MARKER_SIZE:
        return [payload] if payload else []
    middle = len(payload) // 2
    return [payload[:MARKER_SIZE], payload[middle : middle + MARKER_SIZE], payload[-MARKER_SIZE:]]


def _file_contains(path: Path, markers: list[bytes]) -> bool:
    overlap = max(len(m) for m in markers) - 1
    tail = b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_READ_SIZE):
                window = tail + chunk
                if any(marker in window for marker in markers):
                    return True
                tail = window[-overlap:] if overlap else b""
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return False
    return False


def plaintext_on_disk(roots: Iterable[Path], payloads: Iterable[bytes]) -> list[Path]:
    """Every file under ``roots`` that holds a window of one of ``payloads``."""
    markers = [marker for payload in payloads for marker in _markers(payload)]
    if not markers:
        return []
    found: list[Path] = []
    for root in roots:
        if not root.exists():
            continue
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        found += [path for path in files if _file_contains(path, markers)]
    return found


async def active_without_objects(services: Services) -> list[str]:
    """Backups that say ACTIVE while the store lacks ``data.enc`` or ``dek.wrapped``."""
    async with services.db.transaction(write=False) as tx:
        statement = select(BackupMetadata).where(BackupMetadata.status == BackupStatus.ACTIVE)
        active = (await tx.session.execute(statement)).scalars().all()
    missing = []
    for record in active:
        objects = await stored_objects(services.object_store, record.id)
        if not all(objects.values()):
            missing.append(f"{record.id}: {objects}")
    return missing


@dataclass(frozen=True)
class ServedAgain:
    backup_id: str
    restored: bytes


async def serves_again(
    http: httpx.AsyncClient, operator: IssuedApiKey, admin: IssuedApiKey
) -> ServedAgain:
    """A new backup is stored (201) and restored byte for byte; the gateway's own audit
    validation passes. ``http`` has the gateway's ``/api/v1`` as its base URL."""
    payload = marked_payload(64 * 1024)
    stored = await http.post(
        "/backups",
        params={"classification": "INTERNAL", "source_system": "fault-matrix", "filename": "x"},
        headers={**headers(operator), "Content-Type": "application/octet-stream"},
        content=payload,
    )
    assert stored.status_code == 201, stored.text
    backup_id = str(stored.json()["data"]["backup_id"])
    restore = await http.post(
        "/restores",
        headers=headers(admin),
        json={"backup_id": backup_id, "justification": "FAULT-1: serves again after the fault"},
    )
    assert restore.status_code == 201, restore.text
    data = restore.json()["data"]
    downloaded = await http.get(
        f"/restores/{data['restore_id']}/download",
        headers={**headers(admin), "X-Restore-Token": str(data["download"]["token"])},
    )
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == payload
    validation = await http.post("/audit/validate", headers=headers(admin))
    assert validation.status_code == 200, validation.text
    assert validation.json()["data"]["valid"] is True, validation.text
    return ServedAgain(backup_id, downloaded.content)


async def assert_fault_contract(
    services: Services,
    *,
    payloads: Iterable[bytes],
    roots: Iterable[Path],
    http: httpx.AsyncClient,
    operator: IssuedApiKey,
    admin: IssuedApiKey,
) -> None:
    """Points 2 to 5 of the contract (the cell asserts point 1, the client's error, itself).

    Call it once the fault is gone (store back, proxy restarted, process restarted)."""
    assert await active_without_objects(services) == []
    assert plaintext_on_disk(roots, payloads) == []
    await assert_chain_valid(services.db)
    await serves_again(http, operator, admin)
    await assert_chain_valid(services.db)
