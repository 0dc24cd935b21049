"""Concurrent writers in separate OS processes never fork or skip the chain."""

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ssbg.domain.audit_verification import SequenceRange
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit import audit_entries, chain_problems

# Appends serialise on BEGIN IMMEDIATE (SQLite) or the chain-head row lock (PostgreSQL).
pytestmark = pytest.mark.both_backends

APPENDS_PER_WORKER = 200
CHECKPOINT_INTERVAL = 50
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _spawn(workers: int, env: dict[str, str], go: Path) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.append_worker",
                str(APPENDS_PER_WORKER),
                f"w{n}",
                str(go),
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
        )
        for n in range(workers)
    ]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"audit_checkpoint_interval": CHECKPOINT_INTERVAL})


@pytest.mark.slow
async def test_concurrent_processes_append_a_gap_free_unforked_chain(
    backend: str,
    database_url: str,
    tmp_path: Path,
    shared_key_store: FileKeyStore,
    services: Services,
    settings: Settings,
) -> None:
    workers = 4 if backend == "postgres" else 2
    go = tmp_path / "go"
    env = {
        "SSBG_DATABASE_URL": database_url,
        "SSBG_DATA_DIR": str(tmp_path / "worker-data"),
        "SSBG_KEYSTORE_DIR": str(shared_key_store.directory),
        "SSBG_AUDIT_ANCHOR_FILE": str(settings.resolved_audit_anchor_file),
        "SSBG_KEY_PASSWORD": TEST_KEY_PASSWORD,
        "SSBG_AUDIT_CHECKPOINT_INTERVAL": str(CHECKPOINT_INTERVAL),
    }
    processes = _spawn(workers, env, go)
    go.touch()
    codes = await asyncio.to_thread(lambda: [p.wait(timeout=300) for p in processes])
    assert codes == [0] * workers

    entries = await audit_entries(services.db)
    checked = await services.audit_validation.check_chain(SequenceRange())
    result = checked.result

    total = workers * APPENDS_PER_WORKER
    assert [e.sequence_number for e in entries] == list(range(1, total + 1))
    assert chain_problems(entries) == []
    per_worker = Counter(e.details["worker"] for e in entries)
    assert per_worker == {f"w{n}": APPENDS_PER_WORKER for n in range(workers)}
    assert checked.whole_chain
    assert result.valid
    assert (result.head.sequence, result.head.hash) == (total, entries[-1].entry_hash)
    assert result.checkpoints_verified == total // CHECKPOINT_INTERVAL
    # The workers share one anchor file; the last entry is a checkpoint's, so whichever worker
    # wrote it, the mark reached the head and never went back.
    assert result.anchor is not None
    assert (result.anchor.sequence, result.anchor.hash) == (total, entries[-1].entry_hash)
