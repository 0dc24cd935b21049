"""Concurrent writers in separate OS processes never fork or skip the chain."""

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ssbg.services.unit_of_work import Database
from tests.support.audit import audit_entries, chain_problems

APPENDS_PER_WORKER = 200
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _spawn(workers: int, database_url: str, go: Path) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.append_worker",
                database_url,
                str(APPENDS_PER_WORKER),
                f"w{n}",
                str(go),
            ],
            cwd=PROJECT_ROOT,
        )
        for n in range(workers)
    ]


@pytest.mark.slow
async def test_concurrent_processes_append_a_gap_free_unforked_chain(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    workers = 4 if backend == "postgres" else 2
    go = tmp_path / "go"
    processes = _spawn(workers, database_url, go)
    go.touch()
    codes = await asyncio.to_thread(lambda: [p.wait(timeout=300) for p in processes])
    assert codes == [0] * workers

    db = Database(database_url)
    try:
        entries = await audit_entries(db)
        async with db.transaction(write=False) as tx:
            head = await tx.audit.get_head()
    finally:
        await db.dispose()

    total = workers * APPENDS_PER_WORKER
    assert [e.sequence_number for e in entries] == list(range(1, total + 1))
    assert chain_problems(entries) == []
    assert (head.sequence_number, head.entry_hash) == (total, entries[-1].entry_hash)
    per_worker = Counter(e.details["worker"] for e in entries)
    assert per_worker == {f"w{n}": APPENDS_PER_WORKER for n in range(workers)}
