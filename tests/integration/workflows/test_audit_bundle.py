"""An exported bundle verifies offline; an edited one names the first invalid sequence.

The chain: 25 entries, a checkpoint every 5 entries. The bundle is exported through the API
(it then holds 26 entries: its own AUDIT_EXPORT is the last), edited as a file, and verified
by ``verify_bundle`` and by ``ssbg audit verify --bundle`` with no database configured.
"""

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.audit_chain import ChainedFields, compute_entry_hash
from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.audit_signing import public_key_pem
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.audit_bundle_verification import verify_bundle
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.audit_chain import (
    append_until,
    read_lines,
    run_cli,
    sign_bundle_head,
    sign_checkpoint,
    write_lines,
)
from tests.support.factories import create_api_key, headers

INTERVAL = 5
LENGTH = 26  # 25 appended, then the export's own entry


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"audit_checkpoint_interval": INTERVAL})


@pytest.fixture
async def bundle(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, tmp_path: Path
) -> Path:
    auditor = await create_api_key(services, Role.AUDITOR)
    await append_until(services, LENGTH - 1)
    response = await client.get("/audit/export", headers=headers(auditor))
    assert response.status_code == 200
    path = tmp_path / "evidence.jsonl"
    path.write_bytes(response.content)
    return path


async def verify_cli(path: Path, *extra: str) -> tuple[int, Any]:
    # No SSBG_* configuration at all: the offline check needs neither database nor keys.
    outcome = await run_cli(["audit", "verify", "--bundle", str(path), "--json", *extra], {})
    return outcome.exit_code, outcome.json()


def edit(path: Path, change: Any) -> list[dict[str, Any]]:
    records = read_lines(path)
    change(records)
    write_lines(path, records)
    return records


def damage_file(path: Path, damage: Any) -> None:
    path.write_bytes(damage(path.read_bytes()))


def entry(records: list[dict[str, Any]], sequence: int) -> dict[str, Any]:
    return next(r for r in records if r["type"] == "entry" and r["sequence_number"] == sequence)


def checkpoint(records: list[dict[str, Any]], sequence: int) -> dict[str, Any]:
    return next(
        r for r in records if r["type"] == "checkpoint" and r["sequence_number"] == sequence
    )


async def assert_bundle_reports(path: Path, sequence: int, reason: str, *extra: str) -> None:
    exit_code, cli = await verify_cli(path, *extra)
    assert (cli["valid"], cli["first_invalid_sequence"], cli["reason"]) == (False, sequence, reason)
    assert exit_code == 1
    if not extra:
        assert verify_bundle(path).as_dict() == cli


@pytest.mark.both_backends
async def test_exported_bundle_verifies_offline(
    bundle: Path, shared_key_store: FileKeyStore, tmp_path: Path
) -> None:
    trusted = tmp_path / "audit-signing.public.pem"
    trusted.write_text(shared_key_store.public_key_info(AUDIT_SIGNING_NAME).public_key_pem)

    exit_code, cli = await verify_cli(bundle)
    pinned_exit, pinned = await verify_cli(bundle, "--trusted-key", str(trusted))

    assert cli["valid"] is True
    assert cli["entries_checked"] == LENGTH
    assert cli["checkpoints_verified"] == 5
    assert cli["head"]["sequence"] == LENGTH
    assert (cli["bundle_version"], cli["signed_head"]) == (2, True)
    assert (exit_code, pinned_exit) == (0, 0)
    assert cli == verify_bundle(bundle).as_dict()
    assert (cli["key_source"], cli["warnings"]) == ("bundle", ["KEY_NOT_PINNED"])
    assert pinned == cli | {"key_source": "pinned", "warnings": []}


async def test_edited_entry_is_a_hash_mismatch(bundle: Path) -> None:
    edit(bundle, lambda records: entry(records, 12)["details"].update(n=0))

    await assert_bundle_reports(bundle, 12, "HASH_MISMATCH")


async def test_deleted_entry_line_is_a_gap(bundle: Path) -> None:
    edit(bundle, lambda records: records.remove(entry(records, 12)))

    await assert_bundle_reports(bundle, 12, "SEQUENCE_GAP")


async def test_swapped_entry_lines_are_a_gap(bundle: Path) -> None:
    def swap(records: list[dict[str, Any]]) -> None:
        first, second = records.index(entry(records, 12)), records.index(entry(records, 13))
        records[first], records[second] = records[second], records[first]

    edit(bundle, swap)

    await assert_bundle_reports(bundle, 12, "SEQUENCE_GAP")


async def test_edited_checkpoint_fails_its_signature(bundle: Path) -> None:
    edit(bundle, lambda records: checkpoint(records, 10).update(entry_hash="c" * 128))

    await assert_bundle_reports(bundle, 10, "CHECKPOINT_SIGNATURE_INVALID")


async def test_edited_checkpoint_signature_is_invalid(bundle: Path) -> None:
    def flip(records: list[dict[str, Any]]) -> None:
        target = checkpoint(records, 15)
        raw = bytearray(base64.b64decode(target["signature"]))
        raw[-1] ^= 0x01
        target["signature"] = base64.b64encode(bytes(raw)).decode()

    edit(bundle, flip)

    await assert_bundle_reports(bundle, 15, "CHECKPOINT_SIGNATURE_INVALID")


async def test_public_key_swapped_for_another_key_fails_the_first_checkpoint(
    bundle: Path,
) -> None:
    other = public_key_pem(ec.generate_private_key(ec.SECP384R1()).public_key())
    edit(bundle, lambda records: records[0]["signing_key"].update(public_key_pem=other))

    await assert_bundle_reports(bundle, 5, "CHECKPOINT_SIGNATURE_INVALID")


async def test_bundle_forged_end_to_end_is_caught_only_by_pinning_the_real_key(
    bundle: Path, shared_key_store: FileKeyStore, tmp_path: Path
) -> None:
    # The forger rewrites entries from 8 on, recomputes every hash (the audit anchor's in the
    # header too), re-signs every checkpoint and the signed head with a key of their own and
    # puts that key in the header: internally consistent.
    forger = ec.generate_private_key(ec.SECP384R1())

    def forge(records: list[dict[str, Any]]) -> None:
        prev = entry(records, 7)["entry_hash"]
        for record in records:
            if record["type"] == "entry" and record["sequence_number"] >= 8:
                record["details"] = {**record["details"], "forged": True}
                record["prev_hash"] = prev
                record["entry_hash"] = prev = _rehash(record)
            if record["type"] == "checkpoint":
                record.update(
                    sign_checkpoint(
                        forger,
                        sequence_number=record["sequence_number"],
                        entry_hash=entry(records, record["sequence_number"])["entry_hash"],
                        previous=record["previous_checkpoint_sequence"],
                        interval=INTERVAL,
                        created_at=record["created_at"],
                    )
                )
        records[0]["chain_head"]["hash"] = prev
        anchor = records[0]["audit_anchor"]
        anchor["hash"] = entry(records, anchor["sequence"])["entry_hash"]
        records[0]["signing_key"]["public_key_pem"] = public_key_pem(forger.public_key())
        sign_bundle_head(forger, records)

    edit(bundle, forge)
    trusted = tmp_path / "audit-signing.public.pem"
    trusted.write_text(shared_key_store.public_key_info(AUDIT_SIGNING_NAME).public_key_pem)

    unpinned_exit, unpinned = await verify_cli(bundle)

    assert (unpinned_exit, unpinned["valid"]) == (0, True)
    await assert_bundle_reports(
        bundle, 5, "CHECKPOINT_SIGNATURE_INVALID", "--trusted-key", str(trusted)
    )


def _rehash(record: dict[str, Any]) -> str:
    from datetime import datetime
    from uuid import UUID

    fields = ChainedFields(
        event_id=UUID(record["event_id"]),
        sequence_number=record["sequence_number"],
        occurred_at=datetime.fromisoformat(record["occurred_at"]),
        action=record["action"],
        resource=record["resource"],
        result=record["result"],
        incident_level=record["incident_level"],
        actor_id=UUID(record["actor_id"]) if record["actor_id"] else None,
        actor_role=record["actor_role"],
        details=record["details"],
        source_ip=record["source_ip"],
        request_id=record["request_id"],
    )
    return compute_entry_hash(record["prev_hash"], fields)


async def test_entries_cut_from_the_tail_before_a_checkpoint_are_beyond_head(
    bundle: Path,
) -> None:
    def cut(records: list[dict[str, Any]]) -> None:
        for sequence in range(18, LENGTH + 1):
            records.remove(entry(records, sequence))
        records[-1]["entries"] = 17

    edit(bundle, cut)

    await assert_bundle_reports(bundle, 18, "CHECKPOINT_BEYOND_HEAD")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: data.rindex(b'{"type":"end"')], id="no-end-record"),
        pytest.param(
            lambda data: data.replace(b'{"type":"entry"', b"{'type':'entry'", 1), id="not-json"
        ),
        pytest.param(lambda data: data.replace(b'"version":2', b'"version":3', 1), id="version"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
async def test_unreadable_bundle_exits_2(bundle: Path, damage: Any) -> None:
    damage_file(bundle, damage)

    exit_code, cli = await verify_cli(bundle)

    assert exit_code == 2
    assert cli["error"]["code"] == "BUNDLE_MALFORMED"
