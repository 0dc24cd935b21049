"""Throttle benchmark: a bad-key flood from one address while a legitimate client backs up and
restores from the same address.

A real uvicorn serving the gateway (``ssbg init`` + ``ssbg.api.app:create_served_app``, one
worker) on PostgreSQL (a scratch database on ``SSBG_BENCH_POSTGRES_URL`` or
``SSBG_TEST_POSTGRES_URL``, default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``)
and on SQLite (``--backend``, default both). For each:

1. quiet: the legitimate client (the bootstrap super_admin; curl for the bytes) uploads SIZE
   bytes of random data (``--size-mib``, default 32) as an INTERNAL backup, then restores it:
   ``POST /restores`` (with a fresh TOTP code, so it works at any incident level) until the
   201, and the download streamed by curl to /dev/null. Both are timed.
2. under attack: an attacker on the same loopback address sends ``GET /me`` with a random
   well-formed unknown key at ``--rate`` requests per second (default 200; open loop: a request
   is started on schedule whether or not earlier ones have been answered, at most 32 in
   flight), starting ``--lead-seconds`` (default 3) before the same backup and restore, and
   stopping when they are done. The attack never runs longer than ``--max-seconds`` (default
   180): a legitimate backup or restore that has not completed by then fails the bench.

The table: offered and achieved bad requests per second, the attack's 401s and 429s (and
anything else), the median and 99th percentile latency of the attack's answers, the audit
entries the attack wrote (``AUTH_FAILURE`` and ``AUTH_THROTTLED``, counted in the database),
and the legitimate backup and restore latencies with and without the attack. Exits non-zero
if a legitimate request failed, if the attack was never throttled, or if it wrote more than
the limit allows. Usage: ``make bench-throttle`` or ``.venv/bin/python bench/throttle_bench.py
[--backend postgres|sqlite|both] [--size-mib N] [--rate N] [--smoke]``; ``--smoke`` (``make
bench-smoke``) runs 4 MiB at 50 requests/s and prints what ran, no figures.
"""

import argparse
import asyncio
import contextlib
import os
import secrets
import sqlite3
import statistics
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pyotp
from harness import MIB, Gateway, curl_upload, make_payload, make_workdir, scratch_database

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# The attacker's connections (keep-alive, like a real client's pool). Beyond ~100 concurrent
# connections from one httpx client this 2-vCPU VM serves fewer requests, valid ones too.
IN_FLIGHT = 32
AUTH_FAILURE_LIMIT = 20  # the gateway's default, set explicitly
ATTACK_ACTIONS = ("AUTH_FAILURE", "AUTH_THROTTLED")
# A few restores with one key: lift the hourly limits (P5, P6) so they never interfere.
ENV = {
    "SSBG_MAX_RESTORES_PER_KEY_PER_HOUR": "100000",
    "SSBG_MAX_RESTORES_PER_HOUR": "100000",
    "SSBG_AUTH_FAILURE_LIMIT": str(AUTH_FAILURE_LIMIT),
}


# -- the attacker ---------------------------------------------------------------------------


@dataclass
class Attack:
    """Bad-key requests at a fixed rate on a thread of its own, until stopped."""

    url: str
    rate: float
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    offered: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> "Attack":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    async def _one(self, client: httpx.AsyncClient, gate: asyncio.Semaphore) -> None:
        started = time.perf_counter()
        try:
            response = await client.get(
                "/me", headers={"X-API-Key": "ssbg_" + secrets.token_hex(16)}
            )
            self.statuses[response.status_code] += 1
        except httpx.HTTPError as error:
            self.errors[type(error).__name__] += 1
        finally:
            self.latencies.append(time.perf_counter() - started)
            gate.release()

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        gate = asyncio.Semaphore(IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=60) as client:
            started = time.perf_counter()
            while not self._stop.is_set():
                due = started + self.offered / self.rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                await gate.acquire()
                self.offered += 1
                task = asyncio.create_task(self._one(client, gate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            self.seconds = time.perf_counter() - started
            await asyncio.gather(*tasks)


# -- the legitimate client ------------------------------------------------------------------


class Totp:
    """Fresh TOTP codes for the bootstrap key: each step is accepted once (±1 step), so a
    code is taken from the earliest step not used yet, waiting for one when all are."""

    def __init__(self, secret: str) -> None:
        self._totp = pyotp.TOTP(secret)
        self._last_step = -1

    def code(self) -> str:
        while True:
            current = int(time.time()) // 30
            step = max(current - 1, self._last_step + 1)
            if step <= current + 1:
                self._last_step = step
                return self._totp.at(step * 30)
            time.sleep(1)


def restore(gateway: Gateway, totp: Totp, backup_id: str) -> float:
    """``POST /restores`` until the 201, then the download to /dev/null; seconds for both."""
    started = time.perf_counter()
    with httpx.Client(timeout=600) as client:
        response = client.post(
            f"{gateway.url}/restores",
            headers={"X-API-Key": gateway.api_key, "X-MFA-Token": totp.code()},
            json={"backup_id": backup_id, "justification": "throttle benchmark run"},
        )
    if response.status_code != 201:
        raise SystemExit(f"POST /restores answered {response.status_code}: {response.text}")
    download = response.json()["data"]["download"]
    url = gateway.url.removesuffix("/api/v1") + download["url"]
    curl = ["curl", "-sS", "--fail", "-o", os.devnull, "-H", f"X-API-Key: {gateway.api_key}"]
    subprocess.run([*curl, "-H", f"X-Restore-Token: {download['token']}", url], check=True)
    return time.perf_counter() - started


def backup_and_restore(gateway: Gateway, totp: Totp, source: Path) -> tuple[float, float]:
    backup_seconds, record = curl_upload(gateway, source, multipart=False)
    return backup_seconds, restore(gateway, totp, record["backup_id"])


# -- the audit log --------------------------------------------------------------------------


async def _count_pg(url: str, since: int) -> Counter[str]:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        rows = await connection.fetch(
            "SELECT action, count(*) FROM audit_log_entries WHERE sequence_number > $1 "
            "GROUP BY action",
            since,
        )
        head = await connection.fetchval("SELECT max(sequence_number) FROM audit_log_entries")
    finally:
        await connection.close()
    return Counter({row[0]: row[1] for row in rows} | {"": head or 0})


def audit_counts(database_url: str, since: int = 0) -> Counter[str]:
    """Entries per action after sequence ``since``; the head sequence under ``""``."""
    if database_url.startswith("postgresql"):
        return asyncio.run(_count_pg(database_url, since))
    path = database_url.split("///", 1)[1]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT action, count(*) FROM audit_log_entries WHERE sequence_number > ? "
            "GROUP BY action",
            (since,),
        ).fetchall()
        head = connection.execute("SELECT max(sequence_number) FROM audit_log_entries").fetchone()
    return Counter(dict(rows) | {"": head[0] or 0})


# -- one backend ----------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    quiet: tuple[float, float]
    attacked: tuple[float, float]
    attack: Attack
    entries: Counter[str]


def run_backend(backend: str, args: argparse.Namespace, pg: str | None) -> Result:
    workdir = make_workdir(f"ssbg-bench-throttle-{backend}-")
    extra = dict(ENV)
    with contextlib.ExitStack() as stack:
        if backend == "postgres":
            assert pg is not None
            extra["SSBG_DATABASE_URL"] = stack.enter_context(scratch_database(pg))
        return _measure(workdir, extra, args, backend)


def _measure(
    workdir: Path, extra: dict[str, str], args: argparse.Namespace, backend: str
) -> Result:
    gateway = Gateway(workdir, extra)
    database_url = extra.get("SSBG_DATABASE_URL") or f"sqlite:///{gateway.data_dir / 'ssbg.db'}"
    source = workdir / "payload.bin"
    make_payload(source, args.size_mib * MIB)
    try:
        gateway.start()
        totp = Totp(gateway.totp_secret)
        small = workdir / "warm-up.bin"
        small.write_bytes(os.urandom(1024))
        backup_and_restore(gateway, totp, small)  # loads the private key (PBKDF2) once
        quiet = backup_and_restore(gateway, totp, source)
        before = audit_counts(database_url)[""]
        attack = Attack(gateway.url, args.rate).start()
        legitimate = ThreadPoolExecutor(max_workers=1)
        try:
            time.sleep(args.lead_seconds)
            work = legitimate.submit(backup_and_restore, gateway, totp, source)
            try:
                attacked = work.result(timeout=args.max_seconds)
            except FuturesTimeout:
                raise SystemExit(
                    f"{backend}: the legitimate backup and restore did not complete within "
                    f"{args.max_seconds:.0f} s under attack"
                ) from None
        finally:
            attack.stop()
            legitimate.shutdown(wait=False)
        entries = audit_counts(database_url, before)
    finally:
        gateway.stop()
    return Result(backend, quiet, attacked, attack, entries)


def check(result: Result) -> list[str]:
    """What makes the run a failure: the throttle never engaged, or wrote too much."""
    problems = []
    attack, entries = result.attack, result.entries
    if attack.statuses[429] == 0:
        problems.append("no request of the attack was throttled")
    unexpected = {s: n for s, n in attack.statuses.items() if s not in (401, 429)}
    if unexpected:
        problems.append(f"the attack got other answers: {unexpected}")
    if attack.errors:
        problems.append(f"the attack's requests failed: {dict(attack.errors)}")
    # Each aligned 5-minute window the attack touches allows LIMIT + 1 failures and one
    # AUTH_THROTTLED entry; a run shorter than 5 minutes touches at most two.
    windows = 2 + int(attack.seconds // 300)
    if entries["AUTH_FAILURE"] > windows * (AUTH_FAILURE_LIMIT + 1):
        problems.append(f"{entries['AUTH_FAILURE']} AUTH_FAILURE entries")
    if entries["AUTH_THROTTLED"] > windows:
        problems.append(f"{entries['AUTH_THROTTLED']} AUTH_THROTTLED entries")
    return problems


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.size_mib} MiB backup and restore, bad-key flood of {args.rate:.0f} req/s "
        f"from the same address (limit {AUTH_FAILURE_LIMIT})"
    )
    print()
    print(
        "| backend | bad req/s offered | achieved | 401 | 429 | other | attack ms p50 / p99 "
        "| audit entries by the attack | backup s quiet / attacked "
        "| restore+download s quiet / attacked |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        a = r.attack
        answered = sum(a.statuses.values())
        other = answered - a.statuses[401] - a.statuses[429] + sum(a.errors.values())
        written = (
            f"{r.entries['AUTH_FAILURE']} AUTH_FAILURE + {r.entries['AUTH_THROTTLED']} "
            "AUTH_THROTTLED"
        )
        print(
            f"| {r.backend} | {a.offered / a.seconds:.0f} | {answered / a.seconds:.0f} "
            f"| {a.statuses[401]} | {a.statuses[429]} | {other} "
            f"| {statistics.median(a.latencies) * 1000:.1f} / "
            f"{percentile(a.latencies, 0.99) * 1000:.1f} | {written} "
            f"| {r.quiet[0]:.2f} / {r.attacked[0]:.2f} | {r.quiet[1]:.2f} / {r.attacked[1]:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--size-mib", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--lead-seconds", type=float, default=3.0)
    parser.add_argument("--max-seconds", type=float, default=180.0)
    parser.add_argument("--smoke", action="store_true", help="4 MiB at 50 req/s, no figures")
    args = parser.parse_args()
    if args.smoke:
        args.size_mib, args.rate, args.lead_seconds = 4, 50.0, 1.0
    pg = os.environ.get("SSBG_BENCH_POSTGRES_URL") or os.environ.get("SSBG_TEST_POSTGRES_URL")
    backends = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]
    if "postgres" in backends and not pg:
        if args.smoke:
            backends.remove("postgres")
            print("throttle: smoke run, PostgreSQL skipped (SSBG_TEST_POSTGRES_URL unset)")
        else:
            pg = DEFAULT_PG
    results = [run_backend(backend, args, pg) for backend in backends]
    problems = [f"{r.backend}: {p}" for r in results for p in check(r)]
    if problems:
        raise SystemExit("throttle bench failed: " + "; ".join(problems))
    if args.smoke:
        print(f"throttle: smoke run on {', '.join(backends)}: legitimate work done, throttled")
        return
    print_table(results, args)


if __name__ == "__main__":
    main()
