"""Signed bundle heads: offline, with a pinned key, every entry is covered by a signature.

Attack 5 of "The database is not trusted": a bundle with no signatures at all — its checkpoints
removed, entries rewritten with recomputed hashes, and the unsigned header's
``checkpoint_interval`` set to null or 10^12 so that no checkpoint ever seems due — verified as
valid (exit 0) under ``ssbg audit verify --bundle FILE --trusted-key PEM``.

The chain: 25 entries, a checkpoint every 5 (5, 10, 15, 20, 25); the export's own entry is the
26th, after the last checkpoint, so only the signed head covers it.
"""

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.integration.workflows.test_audit_bundle import _rehash
from tests.support.audit_chain import append_until, read_lines, run_cli, write_lines
from tests.support.factories import create_api_key, headers

INTERVAL = 5
LENGTH = 26


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"audit_checkpoint_interval": INTERVAL})


@pytest.fixture
async def auditor(services: Services, bootstrap_key: IssuedApiKey) -> IssuedApiKey:
    return await create_api_key(services, Role.AUDITOR)


async def export(client: httpx.AsyncClient, auditor: IssuedApiKey, path: Path) -> Path:
    response = await client.get("/audit/export", headers=headers(auditor))
    assert response.status_code == 200
    await asyncio.to_thread(path.write_bytes, response.content)
    return path


@pytest.fixture
async def bundle(
    client: httpx.AsyncClient, services: Services, auditor: IssuedApiKey, tmp_path: Path
) -> Path:
    await append_until(services, LENGTH - 1)
    return await export(client, auditor, tmp_path / "evidence.jsonl")


@pytest.fixture
def trusted_key(shared_key_store: FileKeyStore, tmp_path: Path) -> Path:
    path = tmp_path / "audit-signing.public.pem"
    path.write_text(shared_key_store.public_key_info(AUDIT_SIGNING_NAME).public_key_pem)
    return path


async def verify_cli(path: Path, *extra: str) -> tuple[int, Any]:
    outcome = await run_cli(["audit", "verify", "--bundle", str(path), "--json", *extra], {})
    return outcome.exit_code, outcome.json()


def strip_signatures(records: list[dict[str, Any]], *, version: int) -> list[dict[str, Any]]:
    """Every checkpoint and signed head removed, every entry rewritten with its hash
    recomputed, the header's head following: a chain nobody signed."""
    kept = [r for r in records if r["type"] not in ("checkpoint", "signed_head")]
    prev = kept[0]["anchor_hash"]
    for record in kept:
        if record["type"] == "entry":
            record["details"] = {**record["details"], "forged": True}
            record["prev_hash"] = prev
            record["entry_hash"] = prev = _rehash(record)
    kept[0]["chain_head"]["hash"] = prev
    kept[0]["version"] = version
    kept[-1]["checkpoints"] = 0
    return kept


@pytest.mark.parametrize("interval", [None, 10**12], ids=["null", "huge"])
async def test_unsigned_version_1_bundle_fails_under_a_pinned_key(
    interval: int | None, bundle: Path, trusted_key: Path
) -> None:
    records = strip_signatures(read_lines(bundle), version=1)
    records[0].pop("audit_anchor", None)  # a version 2 field
    records[0]["checkpoint_interval"] = interval
    write_lines(bundle, records)

    exit_code, result = await verify_cli(bundle, "--trusted-key", str(trusted_key))

    assert (result["valid"], result["first_invalid_sequence"]) == (False, 1)
    assert result["reason"] == "UNCOVERED_ENTRIES"
    assert exit_code == 1


async def test_unsigned_version_2_bundle_fails_under_a_pinned_key(
    bundle: Path, trusted_key: Path
) -> None:
    write_lines(bundle, strip_signatures(read_lines(bundle), version=2))

    exit_code, result = await verify_cli(bundle, "--trusted-key", str(trusted_key))

    assert (result["valid"], result["first_invalid_sequence"]) == (False, 1)
    assert result["reason"] == "SIGNED_HEAD_MISSING"
    assert exit_code == 1
