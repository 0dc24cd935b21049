"""Audit chain benchmark: append throughput and validation throughput, SQLite and PostgreSQL.

    make bench-audit                              # everything (about 5-10 minutes)
    .venv/bin/python bench/audit_bench.py --quick # shorter appends, shorter chains
    .venv/bin/python bench/audit_bench.py --smoke # every path on tiny sizes, no figures
    .venv/bin/python bench/audit_bench.py --backend sqlite --validate-entries 100000

Append: W writers are **separate OS processes**, each with its own database connection and
its own ``AuditTrail`` (as W gateway replicas would be). Each append is one write transaction
(``AuditTrail.append`` of one event, then commit: for PostgreSQL including the wait for the WAL
flush), exactly what a request does — including the audit anchor the writers share (one file
per scratch database, in the bench's key store), which each writer advances after its first
append, at every checkpoint and every ``SSBG_AUDIT_ANCHOR_SECONDS`` (60). Writers start
together and run for a fixed time; the chain is validated afterwards (against the anchor too)
to show it never forked.

Append floor (PostgreSQL; ``--no-floor`` skips it): the same writers sending the same SQL
(compiled from the gateway's statements) in the same round trips — BEGIN, lock the head (and
read the incident state), guarded insert-and-move-head, COMMIT, durability barrier — straight
on asyncpg, without SQLAlchemy's session and execution layers: what this machine allows any
append of this shape from Python.

Append ceiling (PostgreSQL, when ``pgbench`` is installed; ``--no-floor`` skips it too):
``pgbench``, PostgreSQL's own C client, with W connections sending the same round trips to the
same tables — BEGIN, lock the head joined with the incident state (and ``synchronous_commit``
off), guarded insert-and-move-head, COMMIT, durability barrier — with the entry hash computed
in SQL (a stand-in, so the chain is not validated) and no checkpoints (one per 1,000 entries):
what this database and machine allow when the client costs almost nothing.

Validation: a chain of N genuine entries with a signed checkpoint every 1,000 is written in
bulk (then the database settles: ``VACUUM ANALYZE``, or a WAL checkpoint for SQLite), and a
**fresh process** runs ``AuditValidationService.check_chain`` (the service behind
``POST /audit/validate`` and ``ssbg audit verify``) over all of it, configured as the gateway
is by default (one worker process per CPU, at most four, for ranges of 200,000 entries or
more; their start-up is timed); the table shows entries/s and the peak resident memory of that
process (and of one worker), for two chain lengths, so flat memory shows.

PostgreSQL: ``SSBG_BENCH_POSTGRES_URL`` or ``SSBG_TEST_POSTGRES_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``); a scratch database is created and
dropped for every run; when it does not answer (or, in a smoke run, when neither variable is
set), the PostgreSQL rows are skipped. Results are also written to
``bench/results/audit-<time>.json``.

``--smoke`` (``make bench-smoke``) runs every path above once on tiny sizes — 2 writers for a
second, a checkpoint every 50 entries, a seeded chain of 1,000 validated in segments of 200 by
the worker processes (each append run's chain is validated in one pass) — prints what ran and
no rates, writes no results, and exits non-zero if any chain is invalid or any step fails: it
keeps the benchmark working, it measures nothing.
A full run also exits non-zero when a chain is invalid (its figures would mean nothing).
"""

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing import forkserver
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import insert, update
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from ssbg.domain.audit_checkpoint import is_checkpoint_due
from ssbg.domain.audit_events import AuditEvent
from ssbg.domain.audit_verification import DEFAULT_SEGMENT_ENTRIES, SequenceRange
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.incident import IncidentState
from ssbg.infrastructure.clock import SystemClock
from ssbg.infrastructure.crypto.audit_anchor import AnchorFile
from ssbg.infrastructure.crypto.audit_signing import CheckpointSigner
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.database import DURABILITY_BARRIER
from ssbg.infrastructure.db.migrate import upgrade
from ssbg.infrastructure.db.models import AuditChainHead, AuditCheckpoint, AuditLogEntry
from ssbg.repositories.audit_repository import (
    ChainHead,
    LockedHead,
    append_parameters,
    postgres_append_statements,
)
from ssbg.services.audit_anchor import AnchorKeeper
from ssbg.services.audit_service import AuditTrail
from ssbg.services.audit_validation_service import AuditValidationService
from ssbg.services.unit_of_work import AppDatabase, open_database
from ssbg.settings import Settings, default_validation_workers

ROOT = Path(__file__).resolve().parents[1]
KEY_PASSWORD = "bench-key-password-not-secret"  # noqa: S105 (a throwaway key store)
INTERVAL = 1_000  # entries per signed checkpoint, the gateway's default
ANCHOR_SECONDS = Settings.model_fields["audit_anchor_seconds"].default  # the gateway's default
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ENTRY_COLUMNS = tuple(column.key for column in AuditLogEntry.__table__.columns)
CHECKPOINT_COLUMNS = tuple(column.key for column in AuditCheckpoint.__table__.columns)
NO_INCIDENT = IncidentState(level=0, changed_at=None, last_alert_at=None)


@dataclass(frozen=True)
class Plan:
    """What a run does: the checkpoint interval and validation segment length the gateway is
    configured with (its defaults, except in a smoke run), and how long each append runs."""

    interval: int = INTERVAL
    segment_entries: int = DEFAULT_SEGMENT_ENTRIES
    seconds: float = 10.0
    smoke: bool = False


@dataclass
class Row:
    backend: str
    measure: str
    writers: int | None
    entries: int
    seconds: float
    per_second: float
    peak_rss_mib: float | None
    note: str = ""
    valid: bool = True


def rich_event(number: int) -> AuditEvent:
    """An event that fills every hashed field, with nested, non-ASCII and null details."""
    return AuditEvent(
        action=AuditAction.POLICY_CHECK_ALLOW,
        resource=f"backup:{uuid.uuid4()}",
        result=AuditResult.SUCCESS,
        actor_id=uuid.uuid4(),
        actor_role="admin",
        details={"n": number, "note": "héllo ✓", "nested": {"list": [1, "two", None, True]}},
        source_ip="198.51.100.7",
        request_id=f"req-{number}",
    )


# -- scratch databases ------------------------------------------------------------------------


@contextmanager
def scratch_database(backend: str, pg_url: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"ssbg_bench_{uuid.uuid4().hex[:10]}"
    admin = libpq_url(pg_url)
    asyncio.run(_pg(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg(dsn: str, statement: str) -> Any:
    """Run one statement on its own connection; its first value, if it returns rows."""
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(statement)
    finally:
        await connection.close()


def key_store(directory: Path) -> FileKeyStore:
    store = FileKeyStore(directory, KEY_PASSWORD)
    store.ensure_audit_signing_key()
    return store


def trail_of(db: AppDatabase, keys: Path, interval: int) -> tuple[CheckpointSigner, AuditTrail]:
    """The gateway's trail over ``db``, with the audit anchor of that database's chain (one
    anchor file per scratch database, beside the keys)."""
    signer = CheckpointSigner(FileKeyStore(keys, KEY_PASSWORD))
    tag = hashlib.sha256(db.url.encode()).hexdigest()[:16]
    clock = SystemClock()
    anchor_file = AnchorFile(keys / f"anchor-{tag}.json")
    anchor = AnchorKeeper(db, signer, anchor_file, clock, ANCHOR_SECONDS)
    return signer, AuditTrail(clock, signer, interval, anchor)


# -- append ---------------------------------------------------------------------------------


def _writer(url: str, keys: str, plan: Plan, barrier: Barrier, results: Any) -> None:
    async def run() -> int:
        db = open_database(url, pool_size=1)
        signer, trail = trail_of(db, Path(keys), plan.interval)
        await signer.key_info()  # the slow key derivation, before the clock starts
        async with db.transaction(write=False) as tx:  # connect before the clock starts
            await tx.audit.get_head()
        await asyncio.to_thread(barrier.wait)
        deadline = time.monotonic() + plan.seconds
        count = 0
        while time.monotonic() < deadline:
            async with db.transaction(write=True) as tx:
                await trail.append(tx, rich_event(count))
            count += 1
        await db.dispose()
        return count

    results.put(asyncio.run(run()))


def bench_append(backend: str, url: str, keys: Path, writers: int, plan: Plan) -> Row:
    total, elapsed, valid, note = _run_writers(url, keys, writers, plan, _writer)
    return Row(backend, "append", writers, total, elapsed, total / elapsed, None, note, valid)


def _run_writers(
    url: str, keys: Path, writers: int, plan: Plan, target: Any
) -> tuple[int, float, bool, str]:
    """Start ``writers`` processes running ``target(url, keys, plan, barrier, results)``
    together for ``plan.seconds``; the appended total, the seconds from the start signal to the
    last count, whether the chain is valid and holds them all, and a note saying so. A writer
    that dies makes the run fail instead of waiting for ever."""
    asyncio.run(upgrade(url))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(writers + 1)
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(url, str(keys), plan, barrier, results))
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    counts = [results.get(timeout=plan.seconds + 300) for _ in processes]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
    total = sum(counts)
    valid, checked, reason = _validate_in_process(url, keys, plan, adopt=target is _floor_writer)
    ok = valid and checked == total
    return total, elapsed, ok, "chain valid" if ok else f"INVALID ({checked}/{total}: {reason})"


# -- the driver's floor (PostgreSQL) -------------------------------------------------------
#
# The same statements, in the same round trips, straight on asyncpg: what one append costs
# without SQLAlchemy's session, connection and execution machinery. The SQL is compiled from
# the gateway's own statements (``postgres_append_statements``) and bound with the gateway's
# own values (``append_parameters``), and the entries and checkpoints are built by
# ``AuditTrail`` itself, so the two cannot drift apart; the chain is validated afterwards.


def _floor_sql() -> dict[str, tuple[str, tuple[str, ...], dict[str, Any]]]:
    statements = postgres_append_statements()
    compiled = {
        "lock": statements.lock_head,
        "append": statements.append_and_move_head,
        "last checkpoint": statements.last_checkpoint,
        "checkpoint": insert(AuditCheckpoint),
    }
    sql = {}
    for name, statement in compiled.items():
        statement_sql = statement.compile(dialect=asyncpg_dialect())
        sql[name] = (
            str(statement_sql),
            tuple(statement_sql.positiontup or ()),
            dict(statement_sql.params),  # the literals' values (``id = 1``)
        )
    return sql


def _floor_writer(url: str, keys: str, plan: Plan, barrier: Barrier, results: Any) -> None:
    sql = _floor_sql()
    signer, trail = trail_of(open_database(url, pool_size=1), Path(keys), plan.interval)

    def bound(name: str, values: dict[str, Any]) -> list[Any]:
        statement, names, literals = sql[name]
        return [statement, *({**literals, **values}[key] for key in names)]

    async def append(connection: asyncpg.Connection, number: int) -> None:
        await connection.execute("BEGIN")
        locked = LockedHead.of_row(tuple(await connection.fetchrow(*bound("lock", {}))))
        entry = trail.next_entry(locked.head, locked.incident, rich_event(number))
        values = append_parameters(entry, locked.incident)
        values["details"] = json.dumps(values["details"])  # asyncpg takes JSON as text
        status = await connection.execute(*bound("append", values))
        if status != "UPDATE 1":
            raise RuntimeError(f"the guarded append wrote nothing ({status})")
        if is_checkpoint_due(entry.fields.sequence_number, plan.interval):
            previous = await connection.fetchval(*bound("last checkpoint", {})) or 0
            checkpoint = await trail.signed_checkpoint(entry, previous)
            columns = {key: getattr(checkpoint, key) for key in sql["checkpoint"][1]}
            await connection.execute(*bound("checkpoint", columns))
        await connection.execute("COMMIT")
        await connection.fetchval(DURABILITY_BARRIER)

    async def run() -> int:
        await signer.key_info()  # the slow key derivation, before the clock starts
        connection = await asyncpg.connect(libpq_url(url))
        await asyncio.to_thread(barrier.wait)
        deadline = time.monotonic() + plan.seconds
        count = 0
        while time.monotonic() < deadline:
            await append(connection, count)
            count += 1
        await connection.close()
        return count

    results.put(asyncio.run(run()))


def bench_append_floor(url: str, keys: Path, writers: int, plan: Plan) -> Row:
    total, elapsed, valid, note = _run_writers(url, keys, writers, plan, _floor_writer)
    return Row(
        "postgres", "append floor", writers, total, elapsed, total / elapsed, None, note, valid
    )


# -- the database's ceiling (PostgreSQL, pgbench) -----------------------------------------

PGBENCH_APPEND = """\
BEGIN;
SELECT h.sequence_number AS seq, h.entry_hash AS hash, s.incident_level AS level,
  set_config('synchronous_commit', 'off', true) AS sc
  FROM audit_chain_head h JOIN system_state s ON true WHERE h.id = 1 FOR UPDATE OF h \\gset
WITH appended AS (INSERT INTO audit_log_entries SELECT gen_random_uuid(), :seq::bigint + 1, now(),
  gen_random_uuid(), 'admin', 'BACKUP_CREATE', 'backup:' || gen_random_uuid(), 'SUCCESS',
  '{"classification": "CONFIDENTIAL", "filename": "ledger.db", "size_bytes": 1048576}'::jsonb,
  '203.0.113.7', 'bench-request', :level::int, :hash,
  encode(sha512(convert_to(:hash || (:seq::bigint + 1)::text, 'UTF8')), 'hex')
  WHERE EXISTS (SELECT FROM system_state WHERE id = 1 AND incident_level = :level::int)
  RETURNING sequence_number, entry_hash)
UPDATE audit_chain_head SET sequence_number = appended.sequence_number,
  entry_hash = appended.entry_hash, updated_at = now() FROM appended WHERE id = 1;
COMMIT;
SELECT pg_logical_emit_message(true, 'ssbg.durability-barrier', '');
"""


def pgbench() -> str | None:
    """``pgbench`` on PATH, else the newest one of Debian's PostgreSQL packages."""
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))
    return str(candidates[-1]) if candidates else None


def bench_append_ceiling(
    program: str, url: str, workdir: Path, writers: int, seconds: float
) -> Row:
    asyncio.run(upgrade(url))
    script = workdir / "append.pgbench"
    script.write_text(PGBENCH_APPEND)
    threads = min(writers, os.cpu_count() or 1)
    command = [program, "-n", "-M", "prepared", "-c", str(writers), "-j", str(threads)]
    command += ["-T", str(max(1, round(seconds))), "-f", str(script), libpq_url(url)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    processed = re.search(r"number of transactions actually processed: (\d+)", output)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    if processed is None or tps is None:
        raise SystemExit(f"pgbench printed no result:\n{output}")
    total, per_second = int(processed.group(1)), float(tps.group(1))
    head = asyncio.run(_pg(libpq_url(url), "SELECT sequence_number FROM audit_chain_head"))
    if head != total:
        raise SystemExit(f"pgbench committed {total} transactions but the head moved {head}")
    note = "C client; hash in SQL, chain not validated"
    return Row(
        "postgres",
        "append ceiling (pgbench)",
        writers,
        total,
        total / per_second,
        per_second,
        None,
        note,
    )


def bench_append_ceilings(
    pg_url: str, workdir: Path, writer_counts: list[int], plan: Plan
) -> list[Row]:
    program = pgbench()
    if program is None:
        print("pgbench is not installed: no append ceiling.")
        return []
    rows = []
    for writers in writer_counts:
        print(f"postgres: append ceiling (pgbench), {writers} connections")
        with scratch_database("postgres", pg_url, workdir) as url:
            rows.append(bench_append_ceiling(program, url, workdir, writers, plan.seconds))
        report_row(rows[-1], plan)
    return rows


def libpq_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _validate_in_process(
    url: str, keys: Path, plan: Plan, *, adopt: bool = False
) -> tuple[bool, int, str | None]:
    """Validate the whole chain. ``adopt``: first anchor the chain as it stands — for the
    floor's writers, which send the append's statements and keep no anchor."""

    async def run() -> tuple[bool, int, str | None]:
        db = open_database(url)
        signer, trail = trail_of(db, keys, plan.interval)
        service = AuditValidationService(db, trail, signer, plan.interval, trail.anchor)
        try:
            if adopt:
                await _anchor_head(db, trail)
            result = (await service.check_chain(SequenceRange())).result
        finally:
            await db.dispose()
        return result.valid, result.entries_checked, result.reason

    return asyncio.run(run())


# -- validation -----------------------------------------------------------------------------


def _validator(url: str, keys: str, plan: Plan, results: Any) -> None:
    async def run() -> dict[str, Any]:
        db = open_database(url)
        signer, trail = trail_of(db, Path(keys), plan.interval)
        await signer.key_info()
        service = AuditValidationService(
            db,
            trail,
            signer,
            plan.interval,
            trail.anchor,
            workers=default_validation_workers(),  # as the gateway and the CLI configure it
            segment_entries=plan.segment_entries,
        )
        async with db.transaction(write=False) as tx:
            await tx.audit.get_head()
        before = _rss_mib()
        started = time.perf_counter()
        checked = await service.check_chain(SequenceRange())  # worker start-up included
        elapsed = time.perf_counter() - started
        await db.dispose()
        # The workers are children of the fork server (ssbg.services.audit_validation_service),
        # which reaps them; stopping it and waiting for it makes RUSAGE_CHILDREN count them.
        forkserver._forkserver._stop()  # the standard library's own way to stop it
        return {
            "valid": checked.result.valid,
            "reason": checked.result.reason,
            "entries": checked.result.entries_checked,
            "checkpoints": checked.result.checkpoints_verified,
            "segments": checked.segments,
            "seconds": elapsed,
            "rss_before_mib": before,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        }

    results.put(asyncio.run(run()))


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_validate(backend: str, url: str, keys: Path, entries: int, plan: Plan) -> Row:
    asyncio.run(upgrade(url))
    seeding = time.perf_counter()
    asyncio.run(_seed(url, keys, entries, plan))
    print(f"  seeded {entries:,} entries in {time.perf_counter() - seeding:.0f} s", flush=True)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_validator, args=(url, str(keys), plan, results))
    process.start()
    outcome = results.get()
    process.join()
    valid = outcome["valid"] and outcome["entries"] == entries
    note = (
        f"valid, {outcome['checkpoints']} checkpoints; RSS before {outcome['rss_before_mib']:.0f}"
        f" MiB; {outcome['segments']} worker(s)"
        + (
            f", peak RSS of one {outcome['worker_peak_rss_mib']:.0f} MiB"
            if outcome["segments"] > 1
            else ""
        )
        if valid
        else f"INVALID ({outcome['entries']}/{entries}: {outcome['reason']})"
    )
    return Row(
        backend,
        "validate",
        None,
        outcome["entries"],
        outcome["seconds"],
        outcome["entries"] / outcome["seconds"],
        outcome["peak_rss_mib"],
        note,
        valid,
    )


async def _seed(url: str, keys: Path, entries: int, plan: Plan) -> None:
    """Write the chain in bulk, then let the database settle as it would have by the time a
    table that size is validated in production: statistics gathered, visibility information
    set (PostgreSQL ``VACUUM ANALYZE``), the write-ahead log checkpointed (SQLite)."""
    db = open_database(url)
    try:
        trail = trail_of(db, keys, plan.interval)[1]
        await seed_chain(db, trail, entries, plan.interval)
        await _anchor_head(db, trail)  # as the gateway would have at the last checkpoint
        autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        async with autocommit.connect() as connection:
            if db.dialect == "sqlite":
                await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                await connection.exec_driver_sql("ANALYZE")
            else:
                await connection.exec_driver_sql(
                    "VACUUM ANALYZE audit_log_entries, audit_checkpoints"
                )
    finally:
        await db.dispose()


async def _anchor_head(db: AppDatabase, trail: AuditTrail) -> None:
    """Advance the chain's audit anchor to its head (written in bulk, not through appends)."""
    async with db.transaction(write=False) as tx:
        head = await tx.audit.get_head()
    await trail.anchor.advance_to(head.sequence_number, head.entry_hash)


async def seed_chain(
    db: AppDatabase, trail: AuditTrail, entries: int, interval: int, *, batch: int = 5_000
) -> None:
    """Append ``entries`` rich events to an empty chain in bulk: the rows and signed
    checkpoints ``AuditTrail.append`` would have written (built by its own ``next_entry`` and
    ``signed_checkpoint``, bound with the repository's ``append_parameters``), inserted
    ``batch`` at a time instead of one transaction per entry, then the head moved to the last."""
    async with db.transaction(write=False) as tx:
        head = await tx.audit.get_head()
    previous_checkpoint = 0
    rows: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    for number in range(1, entries + 1):
        entry = trail.next_entry(head, NO_INCIDENT, rich_event(number))
        values = append_parameters(entry, NO_INCIDENT)
        rows.append({key: values[key] for key in ENTRY_COLUMNS})
        head = ChainHead(entry.fields.sequence_number, entry.entry_hash)
        if is_checkpoint_due(head.sequence_number, interval):
            checkpoint = await trail.signed_checkpoint(entry, previous_checkpoint)
            checkpoints.append({key: getattr(checkpoint, key) for key in CHECKPOINT_COLUMNS})
            previous_checkpoint = head.sequence_number
        if len(rows) == batch or number == entries:
            async with db.engine.begin() as connection:
                await connection.execute(insert(AuditLogEntry), rows)
                if checkpoints:
                    await connection.execute(insert(AuditCheckpoint), checkpoints)
            rows, checkpoints = [], []
    async with db.engine.begin() as connection:
        await connection.execute(
            update(AuditChainHead)
            .where(AuditChainHead.id == 1)
            .values(sequence_number=head.sequence_number, entry_hash=head.entry_hash)
        )


# -- the table ------------------------------------------------------------------------------


def render(rows: list[Row], plan: Plan) -> str:
    if plan.smoke:  # tiny sizes: what ran and whether the chain held, no rates
        lines = ["| database | measure | writers | entries | note |", "|---|---|--:|--:|---|"]
        for row in rows:
            lines.append(
                f"| {row.backend} | {row.measure} | {row.writers or ''} | {row.entries:,} "
                f"| {row.note} |"
            )
        return "\n".join(lines)
    lines = [
        "| database | measure | writers | entries | seconds | entries/s | peak RSS (MiB) | note |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.backend} | {row.measure} | {row.writers or ''} | {row.entries:,} "
            f"| {row.seconds:.1f} | {row.per_second:,.0f} "
            f"| {'' if row.peak_rss_mib is None else f'{row.peak_rss_mib:.0f}'} | {row.note} |"
        )
    return "\n".join(lines)


def report_row(row: Row, plan: Plan) -> None:
    print(render([row], plan).splitlines()[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--writers", default="1,4,16", help="comma-separated writer counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="append run time each")
    parser.add_argument(
        "--validate-entries",
        default="100000,1000000",
        help="comma-separated chain lengths to validate",
    )
    parser.add_argument("--quick", action="store_true", help="3 s appends, 20k/100k chains")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every path once on tiny sizes (2 writers for 1 s, a checkpoint every 50 entries, "
        "a 1,000-entry chain validated in segments of 200); no rates, no results file",
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the asyncpg-only append floor (PostgreSQL)"
    )
    args = parser.parse_args()
    plan = Plan(seconds=args.seconds)
    if args.quick:
        plan = Plan(seconds=3.0)
        args.validate_entries = "20000,100000"
    if args.smoke:
        plan = Plan(interval=50, segment_entries=200, seconds=1.0, smoke=True)
        args.writers, args.validate_entries = "2", "1000"
    configured = os.environ.get("SSBG_BENCH_POSTGRES_URL") or os.environ.get(
        "SSBG_TEST_POSTGRES_URL"
    )
    pg_url = configured or DEFAULT_PG
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if "postgres" in backends and plan.smoke and not configured:
        print("SSBG_TEST_POSTGRES_URL is not set: the smoke run skips PostgreSQL.")
        backends.remove("postgres")
    elif "postgres" in backends and not _postgres_answers(pg_url):
        print(f"PostgreSQL at {pg_url} does not answer: skipping it.")
        backends.remove("postgres")
    writer_counts = [int(n) for n in args.writers.split(",")]
    lengths = [int(n) for n in args.validate_entries.split(",") if n]

    rows: list[Row] = []
    started_at = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="ssbg-bench-") as directory:
        workdir = Path(directory)
        keys = workdir / "keys"
        key_store(keys)
        for backend in backends:
            for writers in writer_counts:
                print(f"{backend}: append, {writers} writer processes, {plan.seconds:.0f} s")
                with scratch_database(backend, pg_url, workdir) as url:
                    rows.append(bench_append(backend, url, keys, writers, plan))
                report_row(rows[-1], plan)
            if backend == "postgres" and not args.no_floor:
                for writers in writer_counts:
                    print(f"{backend}: append floor (asyncpg alone), {writers} writer processes")
                    with scratch_database(backend, pg_url, workdir) as url:
                        rows.append(bench_append_floor(url, keys, writers, plan))
                    report_row(rows[-1], plan)
                rows += bench_append_ceilings(pg_url, workdir, writer_counts, plan)
            for length in lengths:
                print(f"{backend}: validate {length:,} entries")
                with scratch_database(backend, pg_url, workdir) as url:
                    rows.append(bench_validate(backend, url, keys, length, plan))
                report_row(rows[-1], plan)

    print()
    print(render(rows, plan))
    invalid = [row for row in rows if not row.valid]
    if plan.smoke:
        print(f"\nsmoke: {len(rows)} steps ran, {len(invalid)} invalid; not a measurement.")
    else:
        load = os.getloadavg()
        print(
            f"\n{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
            f" (1/5/15 min) at the end; Python {sys.version.split()[0]}."
        )
        results_dir = ROOT / "bench" / "results"
        results_dir.mkdir(exist_ok=True)
        output = results_dir / f"audit-{started_at:%Y%m%dT%H%M%SZ}.json"
        output.write_text(
            json.dumps(
                {
                    "started_at": started_at.isoformat(),
                    "load": load,
                    "rows": [asdict(r) for r in rows],
                },
                indent=2,
            )
        )
        print(f"Results: {output.relative_to(ROOT)}")
    if invalid:
        raise SystemExit(f"{len(invalid)} chain(s) invalid: see the notes above")


def _postgres_answers(url: str) -> bool:
    dsn = libpq_url(url)
    try:
        asyncio.run(_pg(dsn, "SELECT 1"))
    except (OSError, asyncpg.PostgresError):
        return False
    return True


if __name__ == "__main__":
    main()
