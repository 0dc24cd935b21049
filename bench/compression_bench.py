"""Compression benchmark: what zstd costs and saves on ingest, beside restic and zstd | age.

Two payloads of SIZE bytes (default 1 GiB each): a generated SQL dump (INSERT lines with varied
rows: ids, customers, e-mail addresses, cities, amounts, statuses, timestamps; ``zstd -3``
leaves about 17% of it) and random bytes (incompressible). On each:

(none)   SSBG through a real uvicorn, raw body (``curl -T``), without compression — the time
         until the 201, which is sent after fsync and the ACTIVE commit;
(zstd)   the same with ``compression=zstd`` (level 3);
(restic) ``restic backup`` into a fresh repository of version 2 (restic >= 0.14 compresses
         with zstd, ``--compression auto``), when restic is installed;
(age)    ``zstd -3 -c FILE | age -r RECIPIENT -o OUT``: plain tools, when both are installed.

Every measurement runs ``--runs`` times (default 3); the median MB/s (MB = 10^6 bytes of
payload) is reported, with the stored size: SSBG's ``data.enc`` and ``stored_size``, restic's
repository, age's output file; for SSBG also the server's CPU time per GiB, which other load on
a shared machine disturbs far less than MB/s. Then zstd's cost on random data, which must stay
under 10% (incompressible segments are detected from a sample and stored raw), in MB/s and in
server CPU time. Measurements during which
other processes used more than ``--max-foreign-load`` cores are repeated (see harness.py).
Writes bench/results/compression.json.
Usage: ``make bench-compression`` or
``.venv/bin/python bench/compression_bench.py [--size-mib 1024] [--runs 3] [--keep] [--smoke]``;
``--smoke`` (``make bench-smoke``) runs each measurement once on 4 MiB, no figures.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
from harness import (
    MIB,
    RESULTS,
    Gateway,
    Measurements,
    add_common_arguments,
    curl_upload,
    make_payload,
    make_workdir,
    parse_common_arguments,
    warm_page_cache,
)

RANDOM_COST_GOAL = 0.10
DATASETS = {"sql": "SQL dump", "random": "random"}
CONTENDERS = {
    "none": "SSBG, no compression",
    "zstd": "SSBG, compression=zstd (3)",
    "restic": "restic backup (repo v2, auto)",
    "age": "zstd -3 | age",
}
_INSERT = (
    "INSERT INTO orders (id, customer_id, email, city, amount, status, created_at) "
    "VALUES (%s, %s, 'user%s@example.org', '%s', %s, '%s', '2025-%s');\n"
)


def make_sql_dump(path: Path, size: int, seed: int = 17) -> None:
    """``size`` bytes of INSERT lines; each column drawn from a pool of varied values, so no
    two MiB repeat (no deduplication helps restic) while the text compresses as dumps do."""
    rows = random.Random(seed)
    pools: list[list[str] | tuple[str, ...]] = [
        [str(rows.randrange(10**8, 10**9)) for _ in range(1 << 18)],
        [str(rows.randrange(10**6)) for _ in range(1 << 16)],
        [str(rows.randrange(10**6)) for _ in range(1 << 16)],
        ("Berlin", "Lyon", "Porto", "Graz", "Turku", "Ghent", "Brno", "Cork", "Bergen", "Split"),
        [f"{rows.randrange(10**7) / 100:.2f}" for _ in range(1 << 16)],
        ("NEW", "PAID", "SHIPPED", "CANCELLED", "REFUNDED"),
        [
            f"{rows.randrange(1, 13):02d}-{rows.randrange(1, 29):02d} "
            f"{rows.randrange(24):02d}:{rows.randrange(60):02d}:{rows.randrange(60):02d}"
            for _ in range(1 << 16)
        ],
    ]
    written = 0
    with path.open("wb") as handle:
        while written < size:
            columns = [rows.choices(pool, k=20_000) for pool in pools]
            block = "".join(map(_INSERT.__mod__, zip(*columns, strict=True))).encode()
            block = block[: size - written]
            handle.write(block)
            written += len(block)
        handle.flush()
        os.fsync(handle.fileno())


def tree_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def restic_backup(source: Path, workdir: Path) -> tuple[float, int]:
    restic = shutil.which("restic")
    assert restic is not None
    repo = workdir / "restic-repo"
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(repo)}
    subprocess.run(
        [restic, "init", "--quiet", "--repository-version", "2"],
        env=env,
        check=True,
        capture_output=True,
    )
    started = time.perf_counter()
    subprocess.run(
        [restic, "backup", "--quiet", "--compression", "auto", str(source)],
        env=env,
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    stored = tree_size(repo)
    shutil.rmtree(repo)
    return seconds, stored


def zstd_age(source: Path, workdir: Path, recipient: str) -> tuple[float, int]:
    output = workdir / "payload.zst.age"
    started = time.perf_counter()
    pipeline = 'zstd -3 -q -c "$1" | age -r "$2" -o "$3"'
    subprocess.run(
        ["sh", "-c", pipeline, "sh", str(source), recipient, str(output)],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    stored = output.stat().st_size
    output.unlink()
    return seconds, stored


def age_recipient(workdir: Path) -> str | None:
    if not (shutil.which("age") and shutil.which("age-keygen") and shutil.which("zstd")):
        return None
    identity = workdir / "age-identity.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    )
    return public.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_common_arguments(parser)
    args = parse_common_arguments(parser)
    size = args.size_mib * MIB
    workdir = make_workdir("compression-work-")
    measurements = Measurements(size, args.max_foreign_load)
    stored: dict[str, int] = {}
    stored_size: dict[str, int] = {}
    cpu: dict[str, list[float]] = {}  # the SSBG server's CPU seconds per measurement

    try:
        sources = {"sql": workdir / "dump.sql", "random": workdir / "random.bin"}
        print(f"generating {args.size_mib} MiB of SQL dump and of random data ...", flush=True)
        make_sql_dump(sources["sql"], size)
        make_payload(sources["random"], size)
        recipient = age_recipient(workdir)
        gateway = Gateway(workdir)
        gateway.start()
        objects = workdir / "data" / "objects" / "backups"

        server = psutil.Process(gateway.pid)

        def server_cpu() -> float:
            times = server.cpu_times()
            return float(times.user + times.system)

        def run_ssbg(source: Path, compression: str) -> tuple[float, dict[str, Any]]:
            warm_page_cache(source)
            query = "&compression=zstd" if compression == "zstd" else ""
            cpu_before = server_cpu()
            seconds, record = curl_upload(gateway, source, multipart=False, extra_query=query)
            record["server_cpu_seconds"] = server_cpu() - cpu_before
            assert record["status"] == "ACTIVE"
            assert (record["original_size"], record["compression"]) == (size, compression)
            for done in objects.glob("*/data.enc"):
                done.unlink()
            return seconds, record

        def run_restic(source: Path) -> tuple[float, int]:
            warm_page_cache(source)
            return restic_backup(source, workdir)

        def run_age(source: Path) -> tuple[float, int]:
            assert recipient is not None
            warm_page_cache(source)
            return zstd_age(source, workdir, recipient)

        try:
            for run in range(args.runs):
                print(f"run {run + 1}/{args.runs} ...", flush=True)
                for dataset, source in sources.items():
                    for compression in ("none", "zstd"):
                        name = f"{dataset}_{compression}"
                        record = measurements.measure(
                            name, gateway.pid, lambda s=source, c=compression: run_ssbg(s, c)
                        )
                        stored[name] = record["encrypted_size"]
                        stored_size[name] = record["stored_size"]
                        cpu.setdefault(name, []).append(record["server_cpu_seconds"])
                    if shutil.which("restic"):
                        name = f"{dataset}_restic"
                        stored[name] = measurements.measure(
                            name, None, lambda s=source: run_restic(s)
                        )
                    if recipient is not None:
                        name = f"{dataset}_age"
                        stored[name] = measurements.measure(name, None, lambda s=source: run_age(s))
        finally:
            gateway.stop()
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(args.size_mib, measurements, stored, stored_size, cpu, smoke=args.smoke)


def report(
    size_mib: int,
    measurements: Measurements,
    stored: dict[str, int],
    stored_size: dict[str, int],
    cpu: dict[str, list[float]],
    *,
    smoke: bool,
) -> None:
    labels = {
        f"{dataset}_{contender}": f"{DATASETS[dataset]:<9} {label}"
        for dataset in DATASETS
        for contender, label in CONTENDERS.items()
    }
    if smoke:
        measurements.print_smoke_summary(f"compression of {size_mib} MiB", labels)
        return
    median = measurements.medians()
    size = size_mib * MIB
    runs = len(measurements.samples["sql_none"])
    title = f"ingest of {size_mib} MiB, median of {runs}"
    width = max(len(title), *(len(label) for label in labels.values()))
    print()
    cpu_per_gib = {
        name: statistics.median(values) * MIB * 1024 / size for name, values in cpu.items()
    }
    head = f"{'MB/s':>7} {'best':>7} {'stored MiB':>11} {'of original':>12} {'CPU s/GiB':>10}"
    print(f"{title:<{width}} {head}")
    for name, label in labels.items():
        if name not in median:
            continue
        server = f"{cpu_per_gib[name]:>10.2f}" if name in cpu_per_gib else f"{'':>10}"
        print(
            f"{label:<{width}} {median[name]:>7.1f} {max(measurements.samples[name]):>7.1f} "
            f"{stored[name] / MIB:>11.1f} {stored[name] / size:>11.1%} {server}"
        )
    for dataset in DATASETS:
        name = f"{dataset}_zstd"
        print(f"SSBG stored_size, {DATASETS[dataset]}, zstd: {stored_size[name] / size:.1%}")
    cost = 1 - median["random_zstd"] / median["random_none"]
    cpu_cost = cpu_per_gib["random_zstd"] / cpu_per_gib["random_none"] - 1
    verdict = "meets" if max(cost, cpu_cost) < RANDOM_COST_GOAL else "MISSES"
    print(
        f"zstd's cost on random data: {cost:.1%} of MB/s, {cpu_cost:.1%} more server CPU "
        f"({verdict} the goal of < 10%)"
    )
    print(measurements.foreign_load_summary())
    results = {
        "size_mib": size_mib,
        "cpus": os.cpu_count(),
        "samples_mb_per_s": measurements.samples,
        "median_mb_per_s": median,
        "stored_bytes": stored,
        "ssbg_stored_size": stored_size,
        "ssbg_server_cpu_seconds": cpu,
        "random_zstd_cost": cost,
        "random_zstd_cpu_cost": cpu_cost,
        "foreign_load_cores": measurements.foreign,
        "discarded_noisy_measurements": measurements.discarded,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compression.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
