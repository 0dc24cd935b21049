"""Calling the key lifecycle routes as a super_admin with MFA (a fresh TOTP step each time)."""

import shutil
from pathlib import Path
from typing import Any

import httpx

from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from tests.support.clock import FixedClock
from tests.support.factories import headers


def copy_key_store(source: FileKeyStore, directory: Path, password: str) -> FileKeyStore:
    """A key store of a test's own, as ``source`` is now: for tests that rotate or destroy
    keys (the session's store is shared by every other test)."""
    shutil.copytree(source.directory, directory)
    return FileKeyStore(directory, password)


def with_mfa(clock: FixedClock, key: IssuedApiKey) -> dict[str, str]:
    """Headers with a TOTP code of a step not used yet (each code is accepted once)."""
    clock.advance(seconds=30)
    return headers(key, totp_at=clock.now())


async def rotate(
    client: httpx.AsyncClient, clock: FixedClock, key: IssuedApiKey, reason: str = "yearly"
) -> httpx.Response:
    return await client.post(
        "/admin/keys/rotate", headers=with_mfa(clock, key), json={"reason": reason}
    )


async def rewrap(
    client: httpx.AsyncClient, clock: FixedClock, key: IssuedApiKey, from_version: str
) -> httpx.Response:
    return await client.post(
        "/admin/keys/rewrap",
        headers=with_mfa(clock, key),
        json={"from_version": from_version, "reason": "retire the suspect key"},
    )


async def shred(
    client: httpx.AsyncClient,
    clock: FixedClock,
    key: IssuedApiKey,
    version: str,
    confirmation: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"reason": "end of retention for the 2025 archive"}
    body["confirmation"] = f"DESTROY {version}" if confirmation is None else confirmation
    return await client.post(
        f"/admin/keys/{version}/crypto-shred", headers=with_mfa(clock, key), json=body
    )
