"""Cluster check: a benchmark and a proof at once, on the two-replica cluster.

Starts ``bench/cluster.py``'s cluster (``SSBG_BACKUP_LEASE_SECONDS`` short, audit checkpoints
every 200 entries, the restore rate limits raised for the load), then, through Caddy (TLS):

* 16 uploaders, each one backup after another of 1-64 MiB (log-uniform; deterministic content
  whose SHA-512 is computed as it is sent), for ``--duration`` seconds;
* 8 restorers: restore a random acknowledged backup, download it, compare its SHA-512 (each
  admin key restores at most 9 times, so rule M2 stays quiet: new keys come from a pool);
* 50 control-plane clients, open loop per SPEC §13.6: each sends one request every 200 ms
  (``/me``, backup list, backup status, audit entry page in equal shares), whether or not its
  previous answer came; latency is measured from the scheduled send time.

At 40 % of the duration one replica's process group (supervisor and workers) gets SIGKILL; at
60 % it is started again. The kill window runs from the kill until the restarted replica is
ready plus one Caddy health interval; the control plane's first 3 s are a warm-up (new TLS
connections), counted for errors but not for latency. After the load it checks, straight
against each replica: nothing is left ``PROCESSING`` after one lease; every upload that got a
201 restores byte-identical, the restore requested on one replica and downloaded with its
token from the other; every interrupted upload's record is ``FAILED`` (or ``ACTIVE``, had it
completed) and no object is left in the bucket for a record that is not ``ACTIVE``; the audit
chain validates, with checkpoints. Then (``--sweep``, on by default) it looks for the highest
open-loop control-plane rate whose p95 stays under 100 ms, with no other load.

It prints tables, and last, on its own line, JSON: ``{"lost", "chain_valid", "p95_ms",
"uploads", "restores"}``; it exits 0 only when nothing was lost and the chain is valid (and
every other check passed).
Usage: ``make cluster-check`` or ``.venv/bin/python bench/cluster_check.py [--duration S]
[--no-sweep] [--rates 50,100,...] [--sweep-only] [--keep] [--smoke]``
(``make cluster-check CLUSTER_CHECK_ARGS="--duration 120"``).
"""

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import random
import ssl
import struct
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import cluster
import httpx
import psutil
import pyotp

MIB = 1024 * 1024
UPLOADERS = 16
RESTORERS = 8
CONTROL_CLIENTS = 50
CONTROL_PERIOD = 0.2
KINDS = ("me", "list", "status", "audit")
RESTORES_PER_KEY = 9  # rule M2 fires at 10 restores by one key within an hour
SEEDED = 20
SWEEP_RATES = (25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000)
SWEEP_P95_MS = 100.0
SWEEP_WARMUP = 3.0
KILLED = 1  # the second replica
HEALTH_INTERVAL = 2.0  # deploy/Caddyfile's health_interval
JUSTIFICATION = "cluster-check: restore under load"


# --- shared --------------------------------------------------------------------------------


@dataclass
class Keys:
    url: str
    ca_file: str
    super_admin: str
    operator: str
    auditor: str
    status_ids: list[str]
    kinds: tuple[str, ...] = KINDS  # the control plane's request kinds, in equal shares


@dataclass
class Sample:
    kind: str
    scheduled: float  # time.monotonic() (system-wide on Linux: comparable across processes)
    latency_ms: float
    outcome: str  # "ok" or an error code, an HTTP status or a transport error's name
    size: int = 0


@dataclass
class Upload:
    filename: str
    size: int
    sha512: str
    sample: Sample
    backup_id: str | None = None


@dataclass
class Expected:
    backup_id: str
    sha512: str
    size: int


def _tls(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


async def _outcome(response: aiohttp.ClientResponse) -> str:
    with contextlib.suppress(Exception):
        return str((await response.json())["error"]["code"])
    return f"HTTP {response.status}"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _quiet_closed_transports(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """uvloop reports a TLS write to a transport that a timeout already closed as a "fatal
    error" with a traceback; the request it belonged to is already counted as failed."""
    if isinstance(context.get("exception"), RuntimeError) and "SSL" in context.get("message", ""):
        return
    loop.default_exception_handler(context)


def _run_loop(main: Callable[[], Any]) -> Any:
    async def quiet() -> Any:
        asyncio.get_running_loop().set_exception_handler(_quiet_closed_transports)
        return await main()

    try:
        import uvloop

        return uvloop.run(quiet())
    except ImportError:
        return asyncio.run(quiet())


# --- control plane (a process of its own) ---------------------------------------------------


async def _control_client(
    keys: Keys, index: int, total: int, period: float, start: float, end: float, out: list[Sample]
) -> None:
    connector = aiohttp.TCPConnector(ssl=_tls(keys.ca_file), limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(keys.url, connector=connector, timeout=timeout) as http:
        tasks: set[asyncio.Task[None]] = set()

        async def one(kind: str, scheduled: float) -> None:
            key = keys.auditor if kind == "audit" else keys.operator
            path = {
                "me": "me",
                "list": "backups?limit=20",
                "status": f"backups/{keys.status_ids[index % len(keys.status_ids)]}/status",
                "audit": "audit/entries?limit=20",
            }[kind]
            try:
                async with http.get(path, headers={"X-API-Key": key}) as response:
                    await response.read()
                    outcome = "ok" if response.status == 200 else await _outcome(response)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            out.append(Sample(kind, scheduled, (time.monotonic() - scheduled) * 1000, outcome))

        number = 0
        offset = start + period * index / total
        while (scheduled := offset + number * period) < end:
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            kind = keys.kinds[(index + number) % len(keys.kinds)]
            task = asyncio.create_task(one(kind, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            number += 1
        if tasks:
            await asyncio.gather(*tasks)


def control_process(
    keys: Keys,
    clients: list[int],
    total: int,
    period: float,
    start: float,
    end: float,
    result: str,
) -> None:
    samples: list[Sample] = []

    async def main() -> None:
        await asyncio.gather(
            *(_control_client(keys, i, total, period, start, end, samples) for i in clients)
        )

    _run_loop(main)
    Path(result).write_text(json.dumps([asdict(s) for s in samples]))


# --- uploaders and restorers (a process of their own) ---------------------------------------


def _sizes(seed: int, smoke: bool) -> Iterator[int]:
    rng = random.Random(seed)
    low, high = (math.log(64 * 1024), math.log(2 * MIB)) if smoke else (0.0, math.log(64))
    while True:
        value = math.exp(rng.uniform(low, high))
        yield int(value) if smoke else int(value * MIB)


async def _payload(seed: bytes, size: int, digest: "hashlib._Hash") -> AsyncIterator[bytes]:
    """``size`` bytes: a random 1 MiB block per uploader, each MiB stamped with the upload's
    seed and its index so no two uploads (or MiB) are equal."""
    block = random.Random(seed).randbytes(MIB)
    sent = 0
    index = 0
    while sent < size:
        chunk = (seed + struct.pack(">Q", index) + block)[: min(MIB, size - sent)]
        digest.update(chunk)
        sent += len(chunk)
        index += 1
        yield chunk


class NoAdminKey(Exception):
    """The super_admin could not create a restorer's admin key (its error code)."""


class KeyPool:
    """Admin keys for restores, each used at most ``RESTORES_PER_KEY`` times."""

    def __init__(self, http: aiohttp.ClientSession, super_admin: str) -> None:
        self._http = http
        self._super_admin = super_admin
        self._lock = asyncio.Lock()
        self._key = ""
        self._uses = RESTORES_PER_KEY

    async def take(self) -> str:
        async with self._lock:
            if self._uses >= RESTORES_PER_KEY:
                async with self._http.post(
                    "admin/api-keys",
                    headers={"X-API-Key": self._super_admin},
                    json={"role": "admin", "description": "cluster-check restorer"},
                ) as response:
                    if response.status != 201:
                        raise NoAdminKey(f"admin key: {await _outcome(response)}")
                    self._key = (await response.json())["data"]["api_key"]
                self._uses = 0
            self._uses += 1
            return self._key


async def restore_once(
    http: aiohttp.ClientSession, download_http: aiohttp.ClientSession, key: str, backup: Expected
) -> str:
    """Restore ``backup`` with ``key`` on ``http``, download it on ``download_http``: "ok",
    "MISMATCH" (wrong bytes) or the error."""
    async with http.post(
        "restores",
        headers={"X-API-Key": key},
        json={"backup_id": backup.backup_id, "justification": JUSTIFICATION},
    ) as response:
        if response.status != 201:
            return await _outcome(response) if response.status != 202 else "PENDING_APPROVAL"
        restore = (await response.json())["data"]
    digest = hashlib.sha512()
    async with download_http.get(
        f"restores/{restore['restore_id']}/download",
        headers={"X-API-Key": key, "X-Restore-Token": restore["download"]["token"]},
    ) as response:
        if response.status != 200:
            return await _outcome(response)
        async for chunk in response.content.iter_chunked(MIB):
            digest.update(chunk)
    return "ok" if digest.hexdigest() == backup.sha512 else "MISMATCH"


def bulk_process(
    keys: Keys,
    seeded: list[Expected],
    counts: tuple[int, int],
    end: float,
    smoke: bool,
    result: str,
) -> None:
    uploads: list[Upload] = []
    restores: list[Sample] = []
    acknowledged = list(seeded)

    async def uploader(http: aiohttp.ClientSession, number: int) -> None:
        for attempt, size in enumerate(_sizes(number, smoke)):
            if time.monotonic() >= end:
                return
            filename = f"u{number:02d}-{attempt:04d}.bin"
            digest = hashlib.sha512()
            started = time.monotonic()
            backup_id = None
            try:
                async with http.post(
                    "backups",
                    params={
                        "classification": "INTERNAL",
                        "source_system": "cluster-check",
                        "filename": filename,
                    },
                    headers={
                        "X-API-Key": keys.operator,
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(size),
                        "Idempotency-Key": str(uuid.uuid4()),
                    },
                    data=_payload(filename.encode(), size, digest),
                ) as response:
                    if response.status == 201:
                        backup_id = (await response.json())["data"]["backup_id"]
                        outcome = "ok"
                    else:
                        outcome = await _outcome(response)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            sample = Sample("upload", started, (time.monotonic() - started) * 1000, outcome, size)
            upload = Upload(filename, size, digest.hexdigest(), sample, backup_id)
            uploads.append(upload)
            if backup_id is not None:
                acknowledged.append(Expected(backup_id, upload.sha512, size))
            else:
                await asyncio.sleep(0.5)  # as the restorers: no retry storm

    async def restorer(http: aiohttp.ClientSession, pool: KeyPool, number: int) -> None:
        rng = random.Random(1000 + number)
        while time.monotonic() < end:
            backup = rng.choice(acknowledged)
            started = time.monotonic()
            try:
                outcome = await restore_once(http, http, await pool.take(), backup)
            except NoAdminKey as exc:
                outcome = str(exc)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            latency = (time.monotonic() - started) * 1000
            restores.append(Sample("restore", started, latency, outcome, backup.size))
            if outcome != "ok":
                await asyncio.sleep(0.5)  # not a retry storm while a replica is down

    async def main() -> None:
        connector = aiohttp.TCPConnector(ssl=_tls(keys.ca_file), limit=0)
        timeout = aiohttp.ClientTimeout(total=600, sock_read=120)
        async with aiohttp.ClientSession(keys.url, connector=connector, timeout=timeout) as http:
            pool = KeyPool(http, keys.super_admin)
            await asyncio.gather(
                *(uploader(http, n) for n in range(counts[0])),
                *(restorer(http, pool, n) for n in range(counts[1])),
            )

    _run_loop(main)
    Path(result).write_text(
        json.dumps(
            {
                "uploads": [asdict(u) for u in uploads],
                "restores": [asdict(r) for r in restores],
            }
        )
    )


# --- the parent: set-up, kill, checks, report ----------------------------------------------


def _spawn(target: Callable[..., None], *args: Any) -> multiprocessing.process.BaseProcess:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    return process


def _samples(path: Path) -> list[Sample]:
    return [Sample(**s) for s in json.loads(path.read_text())]


def setup(state: cluster.ClusterState, smoke: bool) -> tuple[Keys, list[Expected]]:
    with httpx.Client(base_url=state.url + "/", verify=state.ca_file, timeout=60) as http:

        def key(role: str) -> str:
            response = http.post(
                "admin/api-keys",
                headers={"X-API-Key": state.api_key},
                json={"role": role, "description": f"cluster-check {role}"},
            )
            response.raise_for_status()
            return str(response.json()["data"]["api_key"])

        operator, auditor = key("operator"), key("auditor")
        seeded = []
        for number in range(SEEDED):
            payload = os.urandom(1024 if number < SEEDED - 4 or smoke else 4 * MIB)
            response = http.post(
                "backups",
                params={
                    "classification": "INTERNAL",
                    "source_system": "cluster-check",
                    "filename": f"seed-{number:02d}.bin",
                },
                headers={"X-API-Key": operator, "Content-Type": "application/octet-stream"},
                content=payload,
            )
            response.raise_for_status()
            backup_id = str(response.json()["data"]["backup_id"])
            seeded.append(Expected(backup_id, hashlib.sha512(payload).hexdigest(), len(payload)))
    keys = Keys(state.url + "/", state.ca_file, state.api_key, operator, auditor, [])
    keys.status_ids = [s.backup_id for s in seeded]
    return keys, seeded


class CpuShare:
    """Cores used during the load: by this run (the cluster's process groups, the PostgreSQL
    backends of its database, this process and its children; a process started meanwhile
    counts whole, one that ended meanwhile is missed) and by everything else on the machine
    (system-wide busy time less this run's: other work on a shared host)."""

    def __init__(self, state: cluster.ClusterState) -> None:
        self._state = state

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def _ours(self) -> dict[tuple[int, float], float]:
        """CPU seconds so far of each of this run's processes, by (pid, start time)."""
        groups = set(self._state.pids.values())
        me = os.getpid()
        ours = {}
        for process in psutil.process_iter(["cpu_times", "cmdline", "create_time"]):
            with contextlib.suppress(psutil.Error, OSError):
                info = process.info
                if info["cpu_times"] is None:
                    continue
                if not (
                    process.pid == me
                    or os.getsid(process.pid) in groups
                    or self._state.database in " ".join(info["cmdline"] or ())
                    or any(parent.pid == me for parent in process.parents())
                ):
                    continue
                times = info["cpu_times"]
                ours[(process.pid, info["create_time"])] = times.user + times.system
        return ours

    def __enter__(self) -> "CpuShare":
        self._started = time.monotonic()
        self._busy_before, self._before = self._busy(), self._ours()
        return self

    def __exit__(self, *_exc: object) -> None:
        elapsed = time.monotonic() - self._started
        after = self._ours()
        ours = sum(cpu - self._before.get(key, 0.0) for key, cpu in after.items())
        self.ours = ours / elapsed
        self.others = max(0.0, (self._busy() - self._busy_before - ours) / elapsed)


@dataclass
class Window:
    load_start: float
    load_end: float
    kill_at: float
    restarted_at: float
    end: float  # of the kill window
    cpu: CpuShare

    @property
    def seconds(self) -> float:
        """How long the kill window lasted within the load."""
        return max(0.0, min(self.end, self.load_end) - self.kill_at)


def run_load(
    state: cluster.ClusterState, keys: Keys, seeded: list[Expected], args: argparse.Namespace
) -> tuple[list[Sample], list[Upload], list[Sample], Window]:
    work = cluster.DATA / "check"
    work.mkdir(exist_ok=True)
    start = time.monotonic() + 3.0  # both load processes are up by then
    end = start + args.duration
    control_file, bulk_file = work / "control.json", work / "bulk.json"
    control = _spawn(
        control_process,
        keys,
        list(range(args.clients)),
        args.clients,
        CONTROL_PERIOD,
        start,
        end,
        str(control_file),
    )
    counts = (args.uploaders, args.restorers)
    bulk = _spawn(bulk_process, keys, seeded, counts, end, args.smoke, str(bulk_file))
    cpu = CpuShare(state).__enter__()
    time.sleep(max(0.0, start + 0.4 * args.duration - time.monotonic()))
    kill_at = time.monotonic()
    cluster.kill_replica(state, KILLED)
    print(f"  t={kill_at - start:5.1f} s  kill -9 replica-{KILLED + 1}", flush=True)
    time.sleep(max(0.0, start + 0.6 * args.duration - time.monotonic()))
    cluster.start_replica(state, KILLED)
    restarted_at = time.monotonic()
    print(f"  t={restarted_at - start:5.1f} s  replica-{KILLED + 1} ready again", flush=True)
    control.join()
    bulk.join()
    cpu.__exit__()
    if control.exitcode != 0 or bulk.exitcode != 0:
        raise SystemExit("a load process failed; see its traceback above")
    bulk_result = json.loads(bulk_file.read_text())
    uploads = [Upload(**{**u, "sample": Sample(**u["sample"])}) for u in bulk_result["uploads"]]
    restores = [Sample(**r) for r in bulk_result["restores"]]
    window = Window(start, end, kill_at, restarted_at, restarted_at + HEALTH_INTERVAL, cpu)
    return _samples(control_file), uploads, restores, window


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)
    lost: int = 0
    restored: int = 0
    processing_cleared_s: float = 0.0
    interrupted: Counter[str] = field(default_factory=Counter)
    chain: dict[str, Any] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    retried: Counter[str] = field(default_factory=Counter)  # final restores tried again
    incident_lowered_from: int = 0


def _all_backups(http: httpx.Client, key: str, status: str | None = None) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100, **({"status": status} if status else {})}
    while True:
        response = http.get("backups", params=params, headers={"X-API-Key": key})
        response.raise_for_status()
        body = response.json()
        records += body["data"]
        cursor = body["meta"].get("next_cursor")
        if not cursor:
            return records
        params["cursor"] = cursor


def check(
    state: cluster.ClusterState,
    keys: Keys,
    seeded: list[Expected],
    uploads: list[Upload],
    lease: int,
    load_end: float,
) -> CheckResult:
    result = CheckResult()
    sa = {"X-API-Key": state.api_key}
    with httpx.Client(base_url=state.url + "/", verify=state.ca_file, timeout=120) as http:
        # 1. Nothing PROCESSING after one lease (+ one sweep period, + slack for a busy machine).
        deadline = load_end + 2 * lease + 15
        while _all_backups(http, state.api_key, "PROCESSING"):
            if time.monotonic() > deadline:
                result.problems.append("backups still PROCESSING after two leases")
                break
            time.sleep(0.2)
        result.processing_cleared_s = time.monotonic() - load_end
        # 2. Alerts the run raised; an incident level they set is lowered (the kill was ours).
        alerts = http.get("admin/alerts", headers=sa, params={"limit": 100}).json()["data"]
        result.alerts = sorted(f"{a['rule_id']} ({a['count']}x)" for a in alerts)
        level = http.get("admin/incident", headers=sa).json()["data"]["level"]
        if level in (1, 2):
            response = http.post(
                "admin/incident",
                headers={**sa, "X-MFA-Token": pyotp.TOTP(state.totp_secret).now()},
                json={"level": 0, "reason": "cluster-check: the replica kill was deliberate"},
            )
            response.raise_for_status()
            result.incident_lowered_from = level
        elif level == 3:
            result.problems.append("incident level 3 (lockdown)")
        # 3. Records of the uploads: acknowledged ones ACTIVE; interrupted ones FAILED or ACTIVE.
        records = {r["original_filename"]: r for r in _all_backups(http, state.api_key)}
        for upload in uploads:
            record = records.get(upload.filename)
            if upload.backup_id is not None:
                if record is None or record["status"] != "ACTIVE":
                    result.problems.append(f"{upload.filename}: acknowledged but not ACTIVE")
                continue
            if record is None:
                result.interrupted["never reached the database"] += 1
            elif record["status"] == "FAILED":
                result.interrupted[f"FAILED {record.get('failure_reason')}"] += 1
            elif record["status"] == "ACTIVE":
                result.interrupted["ACTIVE (stored; the 201 was lost)"] += 1
            else:
                result.problems.append(f"{upload.filename}: interrupted, left {record['status']}")
        # 4. No object in the bucket for a record that is not ACTIVE; no multipart upload open.
        active = {r["backup_id"] for r in records.values() if r["status"] == "ACTIVE"}
        s3 = boto3.client(
            "s3",
            endpoint_url=state.s3_url,
            region_name="us-east-1",
            aws_access_key_id=state.env["SSBG_S3_ACCESS_KEY_ID"],
            aws_secret_access_key=state.env["SSBG_S3_SECRET_ACCESS_KEY"],
        )
        bucket = state.env["SSBG_S3_BUCKET"]
        stored: set[str] = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="backups/"):
            stored |= {item["Key"].split("/")[1] for item in page.get("Contents", [])}
        if stray := stored - active:
            result.problems.append(f"objects left for {len(stray)} records that are not ACTIVE")
        if open_uploads := s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            result.problems.append(f"{len(open_uploads)} multipart uploads left open")
    # 5. Every acknowledged backup restores byte-identical: requested on one replica,
    #    downloaded with that token from the other.
    expected = seeded + [
        Expected(u.backup_id, u.sha512, u.size) for u in uploads if u.backup_id is not None
    ]
    outcomes = _restore_all(state, keys, expected, result.retried)
    for backup, outcome in zip(expected, outcomes, strict=True):
        if outcome == "ok":
            result.restored += 1
        else:
            result.lost += 1
            result.problems.append(f"backup {backup.backup_id}: {outcome}")
    # 6. The audit chain validates, with checkpoints.
    with httpx.Client(base_url=state.url + "/", verify=state.ca_file, timeout=300) as http:
        response = http.post("audit/validate", headers={"X-API-Key": keys.auditor}, json={})
        response.raise_for_status()
        result.chain = response.json()["data"]
    if not result.chain.get("valid") or not result.chain.get("checkpoints_verified"):
        result.problems.append(f"audit chain: {result.chain}")
    return result


def _restore_all(
    state: cluster.ClusterState, keys: Keys, expected: list[Expected], retried: Counter[str]
) -> list[str]:
    async def main() -> list[str]:
        timeout = aiohttp.ClientTimeout(total=600)
        replicas = [aiohttp.ClientSession(url + "/", timeout=timeout) for url in state.replica_urls]
        gate = asyncio.Semaphore(4)
        try:
            async with aiohttp.ClientSession(
                keys.url, connector=aiohttp.TCPConnector(ssl=_tls(keys.ca_file))
            ) as through_caddy:
                pool = KeyPool(through_caddy, keys.super_admin)

                async def one(number: int, backup: Expected) -> str:
                    async with gate:
                        first, other = replicas[number % 2], replicas[(number + 1) % 2]
                        outcome = ""
                        # A refusal of the moment (503 on a busy machine) is not a loss: three
                        # tries; wrong bytes are never retried.
                        for attempt in range(3):
                            try:
                                key = await pool.take()
                                outcome = await restore_once(first, other, key, backup)
                            except NoAdminKey as exc:
                                outcome = str(exc)
                            except (aiohttp.ClientError, TimeoutError) as exc:
                                outcome = type(exc).__name__
                            if outcome in ("ok", "MISMATCH"):
                                break
                            retried[outcome] += 1
                            await asyncio.sleep(1.0 + attempt)
                        return outcome

                return list(await asyncio.gather(*(one(n, b) for n, b in enumerate(expected))))
        finally:
            for session in replicas:
                await session.close()

    return list(_run_loop(main))


# --- the sweep ------------------------------------------------------------------------------


@dataclass
class SweepRow:
    rate: int
    p95: float
    p99: float
    errors: int
    ours: float  # cores used by this run's processes (cluster and clients)
    others: float  # cores used by every other process on the machine

    @property
    def passed(self) -> bool:
        return self.p95 < SWEEP_P95_MS and not self.errors


def sweep(
    state: cluster.ClusterState, keys: Keys, seconds: float, rates: list[int]
) -> list[SweepRow]:
    """One row per rate, rising until p95 reaches 100 ms (or errors pass 1 %). Each rate runs
    ``SWEEP_WARMUP`` seconds first, not measured: new TLS connections, caches."""
    rows = []
    work = cluster.DATA / "check"
    work.mkdir(exist_ok=True)
    for rate in rates:
        period = CONTROL_CLIENTS / rate
        processes = 1 if rate <= 500 else 2
        start = time.monotonic() + 2.0
        measured_from = start + SWEEP_WARMUP
        files = [work / f"sweep-{rate}-{p}.json" for p in range(processes)]
        children = [
            _spawn(
                control_process,
                keys,
                list(range(p, CONTROL_CLIENTS, processes)),
                CONTROL_CLIENTS,
                period,
                start,
                measured_from + seconds,
                str(files[p]),
            )
            for p in range(processes)
        ]
        with CpuShare(state) as cpu:
            for child in children:
                child.join()
        samples = [s for f in files for s in _samples(f) if s.scheduled >= measured_from]
        latencies = [s.latency_ms for s in samples]
        errors = sum(s.outcome != "ok" for s in samples)
        row = SweepRow(
            rate,
            percentile(latencies, 0.95),
            percentile(latencies, 0.99),
            errors,
            cpu.ours,
            cpu.others,
        )
        rows.append(row)
        print(
            f"  sweep {rate:>5}/s: p95 {row.p95:7.1f} ms, errors {errors}, cores: this run "
            f"{cpu.ours:.2f}, other processes {cpu.others:.2f}",
            flush=True,
        )
        if row.p95 >= SWEEP_P95_MS or errors > len(samples) / 100:
            break
    return rows


# --- report ---------------------------------------------------------------------------------


def _print_sweep(rows: list[SweepRow]) -> None:
    print()
    print(
        "| open-loop control-plane rate (no other load) | p95 ms | p99 ms | errors "
        "| cores: this run | cores: other processes |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.rate}/s | {row.p95:.1f} | {row.p99:.1f} | {row.errors} | {row.ours:.2f} "
            f"| {row.others:.2f} |"
        )
    best = max((row.rate for row in rows if row.passed), default=0)
    print(f"highest rate with p95 < {SWEEP_P95_MS:.0f} ms: {best}/s")


def _phase(sample: Sample, window: Window) -> str:
    if sample.scheduled < window.load_start + SWEEP_WARMUP:
        return "warm-up"
    if sample.scheduled < window.kill_at:
        return "before"
    return "during" if sample.scheduled < window.end else "after"


def _row(label: str, samples: list[Sample], seconds: float, *, mb: bool = False) -> str:
    ok = [s for s in samples if s.outcome == "ok"]
    latencies = [s.latency_ms for s in ok]
    rate = (
        f"{sum(s.size for s in ok) / seconds / 1e6:.1f} MB/s"
        if mb
        else f"{len(ok) / seconds:.1f}/s"
    )
    cells = [f"{percentile(latencies, q):.1f}" for q in (0.5, 0.95, 0.99)]
    return (
        f"| {label} | {len(samples)} | {len(samples) - len(ok)} | {rate} | "
        + " | ".join(cells)
        + " |"
    )


def report(
    control: list[Sample],
    uploads: list[Upload],
    restores: list[Sample],
    window: Window,
    duration: float,
    result: CheckResult,
    sweep_rows: list[SweepRow],
) -> dict[str, Any]:
    outside = [s for s in control if _phase(s, window) in ("before", "after")]
    during = [s for s in control if _phase(s, window) == "during"]
    kill_seconds = window.seconds
    upload_samples = [u.sample for u in uploads]
    restart = window.restarted_at - window.kill_at - 0.2 * duration
    print()
    print(
        f"Two replicas x 2 workers, PostgreSQL, moto S3, Caddy TLS; {duration:.0f} s of load; "
        f"kill window {window.end - window.kill_at:.1f} s (kill -9 until ready + "
        f"{HEALTH_INTERVAL:.0f} s; the restart took {restart:.1f} s); "
        f"{os.cpu_count()} CPUs: this run used {window.cpu.ours:.2f} cores, other processes "
        f"{window.cpu.others:.2f}"
    )
    print()
    print("| class | requests | errors | throughput | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    outside_seconds = duration - kill_seconds - SWEEP_WARMUP
    print(_row("control plane, outside the kill window", outside, outside_seconds))
    for kind in KINDS:
        rows = [s for s in outside if s.kind == kind]
        print(_row(f"  {kind}", rows, outside_seconds))
    print(_row("control plane, during the kill window", during, kill_seconds))
    print(_row("uploads (1-64 MiB)", upload_samples, duration, mb=True))
    print(_row("restores (verify + download)", restores, duration, mb=True))
    print()
    print("| errors by code | warm-up | before | during | after |")
    print("|---|---|---|---|---|")
    errors: dict[str, Counter[str]] = {}
    for sample in [*control, *upload_samples, *restores]:
        if sample.outcome != "ok":
            key = f"{sample.kind}: {sample.outcome}"
            errors.setdefault(key, Counter())[_phase(sample, window)] += 1
    for key in sorted(errors):
        counts = errors[key]
        cells = " | ".join(str(counts[phase]) for phase in ("warm-up", "before", "during", "after"))
        print(f"| {key} | {cells} |")
    if not errors:
        print("| (none) | 0 | 0 | 0 | 0 |")
    print()
    acked = sum(u.backup_id is not None for u in uploads)
    print(
        f"uploads acknowledged {acked} of {len(uploads)}; interrupted: "
        f"{dict(result.interrupted) or 'none'}; nothing PROCESSING "
        f"{result.processing_cleared_s:.1f} s after the load"
    )
    print(
        f"after the load: {result.restored} acknowledged backups restored byte-identical "
        f"(requested on one replica, downloaded from the other), {result.lost} lost; "
        f"tried again after: {dict(result.retried) or 'nothing'}"
    )
    chain = result.chain
    print(
        f"audit chain: valid={chain.get('valid')}, entries {chain.get('entries_checked')}, "
        f"checkpoints verified {chain.get('checkpoints_verified')}"
    )
    print(f"alerts raised: {', '.join(result.alerts) or 'none'}", end="")
    lowered = result.incident_lowered_from
    print(f"; incident level {lowered} lowered to 0 before the checks" if lowered else "")
    if sweep_rows:
        _print_sweep(sweep_rows)
    for problem in result.problems[:20]:
        print(f"PROBLEM: {problem}")
    outside_latencies = [s.latency_ms for s in outside if s.outcome == "ok"]
    ok_restores = sum(s.outcome == "ok" for s in restores)
    return {
        "lost": result.lost,
        "chain_valid": bool(chain.get("valid")),
        "p95_ms": round(percentile(outside_latencies, 0.95), 1),
        "uploads": acked,
        "restores": ok_restores + result.restored,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--uploaders", type=int, default=UPLOADERS)
    parser.add_argument("--restorers", type=int, default=RESTORERS)
    parser.add_argument("--clients", type=int, default=CONTROL_CLIENTS, help="control plane")
    parser.add_argument("--lease", type=int, default=15, help="SSBG_BACKUP_LEASE_SECONDS")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--sweep-seconds", type=float, default=10.0)
    parser.add_argument(
        "--rates",
        default=",".join(map(str, SWEEP_RATES)),
        help="open-loop control-plane rates (requests/s) the sweep tries, rising",
    )
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="control-plane request kinds, in equal shares (SPEC §13.6: all four)",
    )
    parser.add_argument(
        "--sweep-only", action="store_true", help="no load, no kill, no checks: the sweep alone"
    )
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="12 s of load, uploads of 64 KiB-2 MiB, no sweep: checks that the check works",
    )
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.sweep = 12.0, False
    print("starting the cluster ...", flush=True)
    state = cluster.start(
        {
            "SSBG_BACKUP_LEASE_SECONDS": str(args.lease),
            "SSBG_AUDIT_CHECKPOINT_INTERVAL": "200",
            "SSBG_MAX_RESTORES_PER_KEY_PER_HOUR": "1000",
            "SSBG_MAX_RESTORES_PER_HOUR": "100000",
        },
        quiet=True,
    )
    rates = [int(rate) for rate in args.rates.split(",")]
    try:
        keys, seeded = setup(state, args.smoke)
        keys.kinds = tuple(kind for kind in args.kinds.split(",") if kind in KINDS)
        if not keys.kinds:
            raise SystemExit(f"--kinds: one or more of {', '.join(KINDS)}")
        if args.sweep_only:
            rows = sweep(state, keys, args.sweep_seconds, rates)
            _print_sweep(rows)
            best = max((row.rate for row in rows if row.passed), default=0)
            print(json.dumps({"highest_rate_p95_under_100ms": best}))
            return
        print(f"load: {args.duration:.0f} s through {state.url}", flush=True)
        control, uploads, restores, window = run_load(state, keys, seeded, args)
        load_end = time.monotonic()
        result = check(state, keys, seeded, uploads, args.lease, load_end)
        sweep_rows = sweep(state, keys, args.sweep_seconds, rates) if args.sweep else []
        summary = report(control, uploads, restores, window, args.duration, result, sweep_rows)
    finally:
        if not args.keep:
            cluster.stop(quiet=True)
    print(json.dumps(summary))
    sys.exit(0 if summary["lost"] == 0 and summary["chain_valid"] and not result.problems else 1)


if __name__ == "__main__":
    main()
