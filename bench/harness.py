"""What the ingest and restore benchmarks share: a real gateway, payloads, and fair measuring.

* :class:`Gateway` — ``ssbg init --json`` then a real uvicorn serving the gateway, in a
  scratch directory, on a free loopback port.
* :class:`RssSampler` — the server's peak resident memory growth during a measurement.
* :class:`ForeignLoad` and :class:`Measurements` — the machine is shared: a measurement during
  which other processes used more than ``--max-foreign-load`` cores is discarded and repeated.
* :func:`add_common_arguments` — ``--size-mib``, ``--runs``, ``--max-foreign-load``, ``--keep``,
  ``--smoke``; :func:`parse_common_arguments` applies ``--smoke``: every measurement once on
  ``SMOKE_SIZE_MIB``, never repeated for foreign load, no results file and no figures printed —
  it checks that the bench still works and measures nothing (``make bench-smoke``).
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

MIB = 1024 * 1024
PASSWORD = "bench-key-password-not-for-production"  # noqa: S105 (throw-away bench key)
BIN = Path(sys.executable).parent
RESULTS = Path("bench/results")
SMOKE_SIZE_MIB = 4


def mb_per_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def make_payload(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 16 * MIB))
            handle.write(block)
            remaining -= len(block)
        handle.flush()
        os.fsync(handle.fileno())


def warm_page_cache(path: Path) -> None:
    """Read the file once so every contender starts from a warm page cache."""
    with path.open("rb") as handle:
        while handle.read(16 * MIB):
            pass


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--max-foreign-load",
        type=float,
        default=0.15,
        help="discard and repeat a measurement during which other processes used more than "
        "this many cores (default 0.15; the machine is shared)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"every measurement once on {SMOKE_SIZE_MIB} MiB, whatever the machine's load; "
        "prints what ran, no figures, writes no results: checks the bench works",
    )


def parse_common_arguments(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments, with ``--smoke`` applied to the common ones."""
    args = parser.parse_args()
    if args.smoke:
        args.size_mib, args.runs, args.max_foreign_load = SMOKE_SIZE_MIB, 1, math.inf
    return args


async def _pg_admin(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn.replace("+asyncpg", ""))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(pg: str) -> Iterator[str]:
    """A fresh PostgreSQL database beside ``pg``'s, dropped afterwards: its SQLAlchemy URL."""
    database = f"ssbg_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(pg, f'CREATE DATABASE "{database}"'))
    try:
        yield pg.rsplit("/", 1)[0] + f"/{database}"
    finally:
        asyncio.run(_pg_admin(pg, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def make_workdir(prefix: str) -> Path:
    # On the repository's disk (a TMPDIR may be tmpfs), inside the git-ignored results dir.
    RESULTS.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=RESULTS)).resolve()


class Gateway:
    """``ssbg init --json`` and a uvicorn serving the gateway, on the local store."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = {
            **os.environ,
            "SSBG_ENV": "development",
            "SSBG_DATA_DIR": str(workdir / "data"),
            "SSBG_KEY_PASSWORD": PASSWORD,
            "SSBG_LOG_LEVEL": "WARNING",
            "SSBG_MAX_UPLOAD_BYTES": str(64 * 1024 * MIB),
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        self.api_key = ""
        self.totp_secret = ""

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def start(self) -> None:
        init = subprocess.run(
            [str(BIN / "ssbg"), "init", "--json"],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            check=True,
        )
        bootstrap = json.loads(init.stdout)
        self.api_key = bootstrap["api_key"]
        self.totp_secret = bootstrap["totp_secret"]
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "ssbg.api.app:create_served_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the gateway did not start")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


def curl_upload(
    gateway: Gateway, source: Path, multipart: bool, extra_query: str = ""
) -> tuple[float, dict[str, Any]]:
    """Upload ``source`` as an INTERNAL backup with curl; (seconds until the 201, the record).
    ``extra_query`` (raw body only) is appended to the query string, e.g. ``&compression=zstd``."""
    base = [
        "curl",
        "-sS",
        "--fail-with-body",
        "-H",
        "Expect:",
        "-H",
        f"X-API-Key: {gateway.api_key}",
    ]
    if multipart:
        command = [
            *base,
            "-F",
            "classification=INTERNAL",
            "-F",
            "source_system=bench",
            "-F",
            f"file=@{source};type=application/octet-stream",
            f"{gateway.url}/backups",
        ]
    else:
        command = [
            *base,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/octet-stream",
            "-T",
            str(source),
            f"{gateway.url}/backups?classification=INTERNAL&source_system=bench&filename=bench.bin"
            + extra_query,
        ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, check=True)
    elapsed = time.perf_counter() - started
    return elapsed, json.loads(result.stdout)["data"]


class RssSampler:
    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.02)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MIB


class ForeignLoad:
    """CPU used during a measurement by other tenants of a shared machine, in cores.

    System-wide busy time, minus interrupt and softirq time and kernel threads (loopback TCP
    and disk writeback done on our behalf), minus this process (threads and waited children
    such as curl and restic) and the servers (the gateway; an S3 server and a relay).
    """

    def __init__(self, server_pid: int | list[int] | None) -> None:
        self._own = psutil.Process()
        pids = [server_pid] if isinstance(server_pid, int) else server_pid or []
        self._servers = [psutil.Process(pid) for pid in pids]

    def _ours(self) -> float:
        own = self._own.cpu_times()
        total = own.user + own.system + own.children_user + own.children_system
        for server in self._servers:
            times = server.cpu_times()
            total += times.user + times.system
        return total

    @staticmethod
    def _kernel_threads() -> float:
        total = 0.0
        for process in psutil.process_iter(["ppid", "cpu_times"]):
            if process.pid == 2 or process.info["ppid"] == 2:
                times = process.info["cpu_times"]
                if times is not None:
                    total += times.user + times.system
        return total

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        accounted = times.idle + getattr(times, "iowait", 0.0)
        accounted += getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)
        return sum(times) - accounted

    def _snapshot(self) -> tuple[float, float, float]:
        return self._busy(), self._ours(), self._kernel_threads()

    def __enter__(self) -> "ForeignLoad":
        self._started = time.perf_counter()
        self._before = self._snapshot()
        return self

    def __exit__(self, *_exc: object) -> None:
        elapsed = time.perf_counter() - self._started
        busy, ours, kernel = (
            after - before for after, before in zip(self._snapshot(), self._before, strict=True)
        )
        self.cores = max(0.0, (busy - ours - kernel) / elapsed)


class Measurements:
    """MB/s samples per measurement name, each kept only if the machine stayed quiet.

    ``run`` returns ``(seconds, extra)``; ``measure`` records ``size / seconds`` and returns
    ``extra``, repeating the run (after a pause) while other processes used too much CPU.
    """

    def __init__(self, size: int, max_foreign_load: float) -> None:
        self.size = size
        self.max_foreign_load = max_foreign_load
        self.samples: dict[str, list[float]] = {}
        self.foreign: dict[str, list[float]] = {}
        self.discarded: dict[str, int] = {}

    def measure(
        self, name: str, server_pid: int | list[int] | None, run: Callable[[], tuple[float, Any]]
    ) -> Any:
        for _attempt in range(40):
            with ForeignLoad(server_pid) as load:
                seconds, extra = run()
            if load.cores <= self.max_foreign_load:
                self.samples.setdefault(name, []).append(mb_per_s(self.size, seconds))
                self.foreign.setdefault(name, []).append(load.cores)
                return extra
            self.discarded[name] = self.discarded.get(name, 0) + 1
            print(f"  {name}: other processes used {load.cores:.2f} cores, repeating", flush=True)
            time.sleep(15)
        raise SystemExit(f"{name}: the machine never stayed quiet enough; try again later")

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.samples.items()}

    def print_table(self, title: str, labels: dict[str, str]) -> dict[str, float]:
        """Median MB/s, best run and the ratios to (a) and (c), one row per label; returns
        the medians."""
        median = self.medians()
        a, c = median["a"], median.get("c")
        width = max(len(title), *(len(label) for label in labels.values()))
        print()
        print(f"{title:<{width}} {'MB/s':>7} {'best':>7} {'/ (a)':>6} {'/ (c)':>6}")
        for name, label in labels.items():
            if name not in median:
                continue
            over_c = f"{median[name] / c:.2f}" if c else "n/a"
            print(
                f"{label:<{width}} {median[name]:>7.1f} {max(self.samples[name]):>7.1f} "
                f"{median[name] / a:>6.2f} {over_c:>6}"
            )
        return median

    def write_results(
        self, filename: str, size_mib: int, ratios: dict[str, float | None], rss: dict[str, float]
    ) -> None:
        results = {
            "size_mib": size_mib,
            "cpus": os.cpu_count(),
            "samples_mb_per_s": self.samples,
            "median_mb_per_s": self.medians(),
            "ratios": ratios,
            "rss_growth_mib": rss,
            "foreign_load_cores": self.foreign,
            "discarded_noisy_measurements": self.discarded,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / filename).write_text(json.dumps(results, indent=2) + "\n")

    def print_smoke_summary(self, title: str, labels: dict[str, str]) -> None:
        """What ran in a smoke run, and what did not (a tool that is absent), with no figures."""
        print()
        print(f"{title}: smoke run, not a measurement")
        for name, label in labels.items():
            print(f"  {'ran    ' if name in self.samples else 'skipped'} {label}")

    def foreign_load_summary(self) -> str:
        worst = max(max(values) for values in self.foreign.values())
        return (
            f"other processes' CPU during kept measurements: at most {worst:.2f} cores; "
            f"measurements repeated because of them: {sum(self.discarded.values())}"
        )
