"""Signed bundle heads: offline, with a pinned key, every entry is covered by a signature.

Attack 5 of "The database is not trusted": a bundle with no signatures at all — its checkpoints
removed, entries rewritten with recomputed hashes, and the unsigned header's
``checkpoint_interval`` set to null or 10^12 so that no checkpoint ever seems due — verified as
valid (exit 0) under ``ssbg audit verify --bundle FILE --trusted-key PEM``.

The chain: 25 entries, a checkpoint every 5 (5, 10, 15, 20, 25); the export's own entry is the
26th, after the last checkpoint, so only the signed head covers it.
"""

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.integration.workflows.test_audit_bundle import _rehash
from tests.support.audit_chain import (
    append_until,
    read_lines,
    run_cli,
    sign_bundle_head,
    write_lines,
)
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
    recomputed, the header's head following: a chain nobody signed. The forger also drops
    the checkpoint intervals ``SYSTEM_START`` entries declare (by which the missing
    checkpoints would be evident at once), so what is left to catch it is the signatures."""
    kept = [r for r in records if r["type"] not in ("checkpoint", "signed_head")]
    prev = kept[0]["anchor_hash"]
    for record in kept:
        if record["type"] == "entry":
            details = {k: v for k, v in record["details"].items() if k != "checkpoint_interval"}
            record["details"] = {**details, "forged": True}
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


async def test_genuine_bundle_verifies_under_a_pinned_key_with_its_head_signed(
    bundle: Path, trusted_key: Path
) -> None:
    exit_code, result = await verify_cli(bundle, "--trusted-key", str(trusted_key))

    assert exit_code == 0
    assert (result["valid"], result["entries_checked"], result["checkpoints_verified"]) == (
        True,
        LENGTH,
        5,
    )
    assert (result["key_source"], result["signed_head"], result["warnings"]) == (
        "pinned",
        True,
        [],
    )


@pytest.mark.parametrize(
    "field",
    [
        pytest.param(lambda h: h["chain_head"].update(sequence=LENGTH + 1), id="chain-head"),
        pytest.param(lambda h: h.update(exported_at="2027-01-01T00:00:00.000000Z"), id="time"),
        pytest.param(lambda h: h["audit_anchor"].update(sequence=5), id="audit-anchor"),
    ],
)
async def test_a_header_changed_after_signing_fails_the_signed_head(
    field: Any, bundle: Path, trusted_key: Path
) -> None:
    records = read_lines(bundle)
    field(records[0])
    write_lines(bundle, records)

    exit_code, result = await verify_cli(bundle, "--trusted-key", str(trusted_key))

    assert (result["valid"], result["reason"]) == (False, "SIGNED_HEAD_SIGNATURE_INVALID")
    assert result["first_invalid_sequence"] == LENGTH  # after the last checkpoint (25)
    assert result["signed_head"] is False
    assert exit_code == 1


async def test_a_signed_head_by_another_key_fails_under_the_pinned_key(
    bundle: Path, trusted_key: Path
) -> None:
    records = read_lines(bundle)
    sign_bundle_head(ec.generate_private_key(ec.SECP384R1()), records)
    write_lines(bundle, records)

    exit_code, result = await verify_cli(bundle, "--trusted-key", str(trusted_key))

    assert (result["valid"], result["first_invalid_sequence"], result["reason"]) == (
        False,
        LENGTH,
        "SIGNED_HEAD_SIGNATURE_INVALID",
    )
    assert exit_code == 1


async def test_the_last_checkpoint_removed_is_missed_by_its_predecessors_signed_interval(
    bundle: Path, trusted_key: Path
) -> None:
    """Checkpoint 20 signed the interval 5, so one was due at 25: however the header reads."""
    records = [
        r for r in read_lines(bundle) if r["type"] != "checkpoint" or r["sequence_number"] != 25
    ]
    records[-1]["checkpoints"] = 4
    write_lines(bundle, records)

    exit_code, result = await verify_cli(bundle, "--trusted-key", str(trusted_key))

    assert (result["valid"], result["first_invalid_sequence"], result["reason"]) == (
        False,
        25,
        "CHECKPOINT_MISMATCH",
    )
    assert exit_code == 1


async def test_a_version_1_bundle_covered_by_its_last_checkpoint_passes_with_a_warning(
    client: httpx.AsyncClient,
    services: Services,
    auditor: IssuedApiKey,
    trusted_key: Path,
    tmp_path: Path,
) -> None:
    """As an earlier gateway wrote it: a range that ends on a checkpoint, no signed head."""
    await append_until(services, LENGTH)
    response = await client.get(
        "/audit/export", params={"to_sequence": 25}, headers=headers(auditor)
    )
    records = [json.loads(line) for line in response.content.splitlines()]
    records = [r for r in records if r["type"] != "signed_head"]
    del records[0]["audit_anchor"]
    records[0].update(version=1, checkpoint_interval=INTERVAL)
    path = tmp_path / "v1.jsonl"
    write_lines(path, records)

    exit_code, result = await verify_cli(path, "--trusted-key", str(trusted_key))

    assert exit_code == 0
    assert (result["valid"], result["bundle_version"], result["signed_head"]) == (True, 1, False)
    assert result["warnings"] == ["VERSION_1"]
