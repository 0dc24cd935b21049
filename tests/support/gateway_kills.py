"""Driving a gateway process that a test kills (SIGKILL) and restarts: starting it without
blocking the test's event loop, and the few API calls and reads the kill -9 cells share."""

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pyotp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.infrastructure.db.models import KeyVersion, RestoreRequest
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.factories import headers
from tests.support.processes import GatewayProcess, gateway_env


@contextlib.asynccontextmanager
async def gateway_for(
    settings: Settings, workdir: Path, *, lease_seconds: int
) -> AsyncIterator[GatewayProcess]:
    """A gateway process serving ``settings``, whose dead uploads and verifications are
    failed ``lease_seconds`` after their last renewal. Started in a thread, so this event
    loop (and a proxy it runs) keeps serving while the gateway starts up."""
    env = gateway_env(settings, TEST_KEY_PASSWORD)
    gateway = GatewayProcess({**env, "SSBG_BACKUP_LEASE_SECONDS": str(lease_seconds)}, workdir)
    try:
        await asyncio.to_thread(gateway.start)
        yield gateway
    finally:
        await asyncio.to_thread(gateway.close)


async def restart(gateway: GatewayProcess) -> None:
    """Start it again on the same socket: start-up recovery runs before it answers."""
    await asyncio.to_thread(gateway.start)


def api(gateway: GatewayProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.base_url, timeout=30)


async def store_backup(http: httpx.AsyncClient, operator: IssuedApiKey, payload: bytes) -> str:
    response = await http.post(
        "/backups",
        params={"classification": "INTERNAL", "source_system": "kill-9", "filename": "x.bin"},
        headers={**headers(operator), "Content-Type": "application/octet-stream"},
        content=payload,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["backup_id"])


async def request_restore(
    http: httpx.AsyncClient, admin: IssuedApiKey, backup_id: str
) -> httpx.Response:
    return await http.post(
        "/restores",
        headers=headers(admin),
        json={"backup_id": backup_id, "justification": "FAULT-16: kill -9 mid-operation"},
    )


async def download(http: httpx.AsyncClient, admin: IssuedApiKey, restore: dict[str, Any]) -> bytes:
    """The restore's plaintext, whole (its ``X-Content-SHA512`` checked)."""
    response = await http.get(
        f"/restores/{restore['restore_id']}/download",
        headers={**headers(admin), "X-Restore-Token": str(restore["download"]["token"])},
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Content-SHA512"] == hashlib.sha512(response.content).hexdigest()
    return response.content


def error_code(response: httpx.Response) -> tuple[int, str]:
    assert "error" in response.json(), response.text
    return response.status_code, str(response.json()["error"]["code"])


def with_code(key: IssuedApiKey, at: datetime) -> dict[str, str]:
    """The key's TOTP code for the step of ``at`` (gateway processes keep real time)."""
    assert key.totp_secret is not None
    return {**headers(key), "X-MFA-Token": pyotp.TOTP(key.totp_secret).at(at)}


async def restores_of(services: Services, backup_id: str) -> list[RestoreRequest]:
    async with services.db.transaction(write=False) as tx:
        statement = select(RestoreRequest).where(RestoreRequest.backup_id == UUID(backup_id))
        return list((await tx.session.execute(statement)).scalars().all())


async def key_version(services: Services, version: str) -> KeyVersion:
    async with services.db.transaction(write=False) as tx:
        record = await tx.key_versions.get_or_none(version)
    assert record is not None
    return record


def trusted_signing_key(key_store: FileKeyStore) -> ec.EllipticCurvePublicKey:
    """The audit signing public key, as an auditor holds it (from its public key file)."""
    pem = key_store.public_key_path(AUDIT_SIGNING_NAME).read_bytes()
    public_key = serialization.load_pem_public_key(pem)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    return public_key


def sealed_key_body(pem: bytes) -> bytes:
    """The part of a private key file unique to it: its PEM armour and the start of its DER
    (algorithm identifiers, the same in every key file) left out, its encrypted key kept."""
    body = pem[200:-40]
    assert b"-----" not in body
    assert len(body) > 3 * 48
    return body
