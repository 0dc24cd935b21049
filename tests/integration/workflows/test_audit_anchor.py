"""The audit anchor: a signed high-water mark of the chain kept in the key store.

Attack 4 of "The database is not trusted": someone who can write the database (not the key
store) replaces a young chain — fewer entries than the checkpoint interval, so no signed
checkpoint vouches for any of them — with fresh entries whose hashes are all correct, and moves
the head. Without the anchor, validation said valid. The chain here: bootstrap, an auditor key
and rich events, 20 entries in all, with the default interval of 1,000.
"""

import asyncio
import base64
import json
import os
import random
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.audit_anchor import AuditAnchor, decode_anchor
from ssbg.domain.audit_chain import ChainedEntry
from ssbg.domain.audit_verification import SequenceRange
from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.audit_anchor import AnchorFile
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore, fingerprint_of
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit_chain import (
    append_until,
    entry_row,
    replace_history,
    rich_event,
    run_cli,
    validate_both,
)
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.log_capture import logged_events

LENGTH = 20
PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def auditor(
    services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> IssuedApiKey:
    issued = await create_api_key(services, Role.AUDITOR)
    await append_until(services, LENGTH - 1)
    clock.advance(minutes=2)  # the next append is due to advance the anchor
    await append_until(services, LENGTH)
    return issued


@pytest.mark.parametrize(
    ("replacement", "sequence", "reason"),
    [
        pytest.param(LENGTH, LENGTH, "ANCHOR_MISMATCH", id="as-long"),
        pytest.param(LENGTH + 5, LENGTH, "ANCHOR_MISMATCH", id="longer"),
        pytest.param(LENGTH - 8, LENGTH - 7, "BEHIND_ANCHOR", id="shorter"),
    ],
)
async def test_replaced_young_history_is_reported_through_api_and_cli(
    replacement: int,
    sequence: int,
    reason: str,
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    settings: Settings,
) -> None:
    await replace_history(services, replacement)

    api, cli, exit_code = await validate_both(client, auditor, services, settings)

    assert (api["valid"], api["first_invalid_sequence"], api["reason"]) == (False, sequence, reason)
    assert api["head"]["sequence"] == replacement
    assert cli == api
    assert exit_code == 1


async def test_genuine_young_chain_validates_against_its_anchor(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    api, cli, exit_code = await validate_both(client, auditor, services, settings)

    assert api["valid"] is True
    assert api["anchor"]["sequence"] == LENGTH
    assert api["anchor"]["hash"] == (await entry_row(services, LENGTH))["entry_hash"]
    assert cli == api
    assert exit_code == 0


# -- when the anchor moves, and when it does not ------------------------------------------------


def anchored(settings: Settings) -> AuditAnchor | None:
    raw = AnchorFile(settings.resolved_audit_anchor_file).read()
    return None if raw is None else decode_anchor(raw)


async def append_one(services: Services, number: int = 1) -> ChainedEntry:
    async with services.db.transaction(write=True) as tx:
        return await services.trail.append(tx, rich_event(number))


async def test_the_anchor_moves_only_once_the_appending_transaction_committed(
    services: Services, bootstrap_key: IssuedApiKey, settings: Settings, clock: FixedClock
) -> None:
    before = anchored(settings)
    assert before is not None  # the bootstrap's transaction advanced it
    clock.advance(minutes=2)

    async with services.db.transaction(write=True) as tx:
        entry = await services.trail.append(tx, rich_event(1))
        assert anchored(settings) == before  # due, but not before the commit

    after = anchored(settings)
    assert after is not None
    assert (after.sequence_number, after.entry_hash) == (
        entry.fields.sequence_number,
        entry.entry_hash,
    )


async def test_a_rolled_back_append_never_moves_the_anchor(
    services: Services, bootstrap_key: IssuedApiKey, settings: Settings, clock: FixedClock
) -> None:
    before = anchored(settings)
    clock.advance(minutes=2)

    async def append_then_fail() -> None:
        async with services.db.transaction(write=True) as tx:
            await services.trail.append(tx, rich_event(1))
            raise RuntimeError("the use case failed after its audit entry")

    with pytest.raises(RuntimeError):
        await append_then_fail()

    assert anchored(settings) == before
    entry = await append_one(services)  # still due: the next append advances it
    assert anchored(settings).sequence_number == entry.fields.sequence_number  # type: ignore[union-attr]


async def test_an_append_that_is_not_due_never_touches_the_file(
    services: Services,
    bootstrap_key: IssuedApiKey,
    settings: Settings,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[Path] = []
    original = AnchorFile.read

    def counted(anchor: AnchorFile) -> bytes | None:
        reads.append(anchor.path)
        return original(anchor)

    monkeypatch.setattr(AnchorFile, "read", counted)
    for number in range(30):  # one transaction each, a fixed clock, no checkpoint
        await append_one(services, number)
    assert reads == []

    clock.advance(seconds=settings.audit_anchor_seconds)
    entry = await append_one(services)

    assert reads
    assert anchored(settings).sequence_number == entry.fields.sequence_number  # type: ignore[union-attr]


@pytest.mark.parametrize("settings_overrides", [{"audit_checkpoint_interval": 5}])
async def test_every_checkpoint_advances_the_anchor(
    services: Services, bootstrap_key: IssuedApiKey, settings: Settings
) -> None:
    head = (await services.audit.head()).sequence_number
    marks = []
    for number in range(head, 16):  # one transaction each; the clock never moves
        entry = await append_one(services, number)
        marks.append((entry.fields.sequence_number, anchored(settings).sequence_number))  # type: ignore[union-attr]

    assert [anchor for sequence, anchor in marks if sequence in (5, 10, 15)] == [5, 10, 15]
    assert [anchor for sequence, anchor in marks if sequence in (11, 12)] == [10, 10]


async def test_a_failed_anchor_write_is_logged_the_request_stands_and_the_next_append_retries(
    services: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(anchor: AnchorFile, expected: bytes | None, content: bytes) -> bool:
        raise OSError(28, "No space left on device: /secret/place")

    monkeypatch.setattr(AnchorFile, "compare_and_swap", disk_full)
    with logged_events() as logged:
        assert (await services.bootstrap.initialize()).issued is not None

    failures = [line for line in logged if line["event"] == "audit_anchor_not_advanced"]
    assert [(line["sequence"], line["error"], line["level"]) for line in failures] == [
        (3, "KeyUnavailable", "error")
    ]
    assert "/secret/place" not in json.dumps(logged)
    missing = (await services.audit_validation.check_chain(SequenceRange())).result
    assert (missing.valid, missing.first_invalid_sequence, missing.reason) == (
        False,
        1,
        "ANCHOR_MISSING",
    )
    assert missing.anchor is None

    monkeypatch.undo()
    entry = await append_one(services)
    retried = (await services.audit_validation.check_chain(SequenceRange())).result
    assert retried.valid
    assert retried.anchor is not None
    assert retried.anchor.sequence == entry.fields.sequence_number


async def test_a_fresh_install_with_no_entries_is_valid_without_an_anchor(
    services: Services,
) -> None:
    result = (await services.audit_validation.check_chain(SequenceRange())).result

    assert (result.valid, result.head.sequence, result.anchor) == (True, 0, None)


def _signed_by_another_key(anchor: AuditAnchor) -> bytes:
    forger = ec.generate_private_key(ec.SECP384R1())
    signature = forger.sign(anchor.signing_input(), ec.ECDSA(hashes.SHA384()))
    return replace(
        anchor,
        signing_key_id=fingerprint_of(forger.public_key()),
        signature=base64.b64encode(signature).decode(),
    ).encode()


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda anchor: b"not an anchor\n", id="garbled"),
        pytest.param(lambda anchor: replace(anchor, sequence_number=1).encode(), id="edited"),
        pytest.param(_signed_by_another_key, id="another-key"),
    ],
)
async def test_an_anchor_that_does_not_verify_is_reported_and_never_overwritten(
    forge: Any,
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    settings: Settings,
    clock: FixedClock,
) -> None:
    genuine = anchored(settings)
    assert genuine is not None
    forged = forge(genuine)
    settings.resolved_audit_anchor_file.write_bytes(forged)

    response = await client.post("/audit/validate", headers=headers(auditor))
    clock.advance(minutes=2)
    with logged_events() as logged:
        await client.post("/audit/validate", headers=headers(auditor))  # a due append

    result = response.json()["data"]
    assert (result["valid"], result["first_invalid_sequence"], result["reason"]) == (
        False,
        1,
        "ANCHOR_INVALID",
    )
    assert result["anchor"] is None
    assert settings.resolved_audit_anchor_file.read_bytes() == forged
    assert "audit_anchor_invalid" in [entry["event"] for entry in logged]


async def test_appends_after_a_replaced_history_never_move_the_anchor_onto_it(
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    settings: Settings,
    clock: FixedClock,
) -> None:
    genuine = anchored(settings)
    await replace_history(services, LENGTH + 10)
    clock.advance(minutes=2)

    with logged_events() as logged:
        # Due appends on the replacement (any request appends: even a failed sign-in).
        await client.get("/me", headers={"X-API-Key": "ssbg_" + "0" * 32})
        await append_one(services)

    assert anchored(settings) == genuine
    assert "audit_anchor_history_replaced" in [entry["event"] for entry in logged]
    result = (await services.audit_validation.check_chain(SequenceRange())).result
    assert (result.valid, result.first_invalid_sequence, result.reason) == (
        False,
        LENGTH,
        "ANCHOR_MISMATCH",
    )


# -- replicas and processes sharing the key store -----------------------------------------------


async def test_replicas_sharing_the_key_store_keep_validating_valid(
    services: Services,
    bootstrap_key: IssuedApiKey,
    settings: Settings,
    clock: FixedClock,
    shared_key_store: FileKeyStore,
) -> None:
    """Two service containers on one database and one key store, appending in turn, a minute
    apart now and then: every validation through either is valid, and the anchor only rises."""
    other = build_services(settings, clock=clock, key_store=shared_key_store)
    replicas = [services, other]
    marks = []
    try:
        for round_number in range(6):
            for replica in replicas:
                await append_one(replica, round_number)
                marks.append(anchored(settings).sequence_number)  # type: ignore[union-attr]
            if round_number % 2:
                clock.advance(seconds=61)
            for replica in replicas:
                result = await replica.audit_validation.validate_chain(
                    None, SequenceRange(), via="api"
                )
                assert result.valid, result
                assert result.anchor is not None
        assert marks == sorted(marks)
        assert marks[-1] > marks[0]

        # A replica that committed an older entry never lowers the mark.
        top = anchored(settings)
        assert top is not None
        older = await entry_row(services, top.sequence_number - 3)
        await other.trail.anchor.advance_to(older["sequence_number"], older["entry_hash"])
        assert anchored(settings) == top
    finally:
        await other.close()


def _spawn_workers(
    settings: Settings, keys: Path, orders: dict[str, list[list[Any]]], go: Path
) -> list[subprocess.Popen[bytes]]:
    processes = []
    for name, order in orders.items():
        plan = go.with_name(f"{name}.json")
        plan.write_text(json.dumps(order))
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.anchor_worker",
                    settings.resolved_database_url,
                    str(keys),
                    str(settings.resolved_audit_anchor_file),
                    str(plan),
                    str(go),
                ],
                cwd=PROJECT_ROOT,
                env={**os.environ, "SSBG_KEY_PASSWORD": TEST_KEY_PASSWORD},
            )
        )
    return processes


@pytest.mark.slow
async def test_the_anchor_never_moves_backwards_under_racing_processes(
    services: Services,
    bootstrap_key: IssuedApiKey,
    settings: Settings,
    shared_key_store: FileKeyStore,
    tmp_path: Path,
) -> None:
    """Three processes advance one anchor file over the same 60 entries — in ascending,
    descending and shuffled order — while the test reads it: the mark never goes down, every
    version of the file verifies, and it ends at the last entry."""
    await append_until(services, 60)
    anchor_file = settings.resolved_audit_anchor_file
    anchor_file.unlink()  # a fresh mark, for the workers to race from
    targets = [
        [row["sequence_number"], row["entry_hash"]]
        for row in [await entry_row(services, sequence) for sequence in range(1, 61)]
    ]
    shuffled = targets[:]
    random.Random(7).shuffle(shuffled)
    go = tmp_path / "go"
    processes = _spawn_workers(
        settings,
        shared_key_store.directory,
        {"up": targets, "down": targets[::-1], "shuffled": shuffled},
        go,
    )
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            raw = AnchorFile(anchor_file).read()
            if raw is not None and (not seen or seen[-1] != raw):
                seen.append(raw)

    watcher = threading.Thread(target=watch)
    watcher.start()
    go.touch()
    try:
        codes = await asyncio.to_thread(lambda: [p.wait(timeout=300) for p in processes])
    finally:
        stop.set()
        watcher.join()

    assert codes == [0, 0, 0]
    sequences = [decode_anchor(raw).sequence_number for raw in seen]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)  # never rewritten at the same entry
    assert sequences[-1] == 60
    final = await services.trail.anchor.read()
    assert final.anchor is not None
    assert (final.anchor.sequence_number, final.anchor.entry_hash) == tuple(targets[-1])
    result = (await services.audit_validation.check_chain(SequenceRange())).result
    assert result.valid


# -- the young chain, exported --------------------------------------------------------------------


async def export_and_verify(
    client: httpx.AsyncClient, auditor: IssuedApiKey, tmp_path: Path, trusted_pem: str
) -> tuple[int, dict[str, Any]]:
    response = await client.get("/audit/export", headers=headers(auditor))
    assert response.status_code == 200
    bundle, key = tmp_path / "young.jsonl", tmp_path / "audit-signing.public.pem"
    await asyncio.to_thread(bundle.write_bytes, response.content)
    await asyncio.to_thread(key.write_text, trusted_pem)
    outcome = await run_cli(
        ["audit", "verify", "--bundle", str(bundle), "--trusted-key", str(key), "--json"], {}
    )
    return outcome.exit_code, outcome.json()


async def test_a_genuine_young_chain_bundle_verifies_offline_against_the_pinned_key(
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    shared_key_store: FileKeyStore,
    tmp_path: Path,
) -> None:
    """No checkpoint yet (1,000 entries away): the signed head alone covers every entry."""
    pem = shared_key_store.public_key_info(AUDIT_SIGNING_NAME).public_key_pem

    exit_code, result = await export_and_verify(client, auditor, tmp_path, pem)

    assert exit_code == 0
    assert result["valid"] is True
    assert (result["entries_checked"], result["checkpoints_verified"]) == (LENGTH + 1, 0)
    assert (result["bundle_version"], result["key_source"], result["signed_head"]) == (
        2,
        "pinned",
        True,
    )
    assert result["warnings"] == []
    # The anchor the gateway held (the export's own entry, 21, was not due to move it).
    assert result["anchor"]["sequence"] == LENGTH


async def test_a_replaced_young_history_exported_fails_offline_against_its_anchor(
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    shared_key_store: FileKeyStore,
    tmp_path: Path,
) -> None:
    """The gateway signs the head of what its database holds, but the head also signs the
    anchor the key store held: the replacement does not reach it with the same hash."""
    await replace_history(services, LENGTH + 5)
    pem = shared_key_store.public_key_info(AUDIT_SIGNING_NAME).public_key_pem

    exit_code, result = await export_and_verify(client, auditor, tmp_path, pem)

    assert (result["valid"], result["first_invalid_sequence"], result["reason"]) == (
        False,
        LENGTH,
        "ANCHOR_MISMATCH",
    )
    assert exit_code == 1
