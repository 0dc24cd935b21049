"""Backups from a pipe: ``producer | ssbg backup -`` streams with flat memory on both sides.

For each size (default 256 MiB and 5 GiB), a producer child process writes SIZE bytes to a pipe
(one 1 MiB block of random data, repeated: encryption costs the same whatever the bytes, and
the producer stays cheap), and ``ssbg backup - --filename … --json`` reads that pipe as a real
subprocess, sending it with chunked transfer encoding to a real gateway (uvicorn, local store,
SQLite). Measured per run:

* seconds from the producer's start until ``ssbg`` exits with the backup stored (the gateway
  answers only after fsync and the ``ACTIVE`` commit), and MB/s (MB = 10^6 bytes);
* the client's peak RSS: its high-water mark (``VmHWM`` in ``/proc/<pid>/status``, read every
  20 ms until it exits; the mark only rises, so a sample misses nothing before it — not
  ``ru_maxrss``, which also counts the bench's own memory the child was forked from) and its
  CPU time (user + system, from ``wait4``);
* the gateway's peak RSS during the run (sampled every 20 ms) and its growth over its RSS
  before the run;
* other processes' CPU during the run (the machine is shared), in cores.

The same pipe into ``curl -T -`` (also chunked) is the reference when curl is installed. Flat
memory shows as the same RSS for both sizes. One run per size; writes bench/results/pipe.json.
Usage: ``make bench-pipe`` or ``.venv/bin/python bench/pipe_bench.py [--sizes-mib 256,5120]
[--no-curl] [--keep] [--smoke]``; ``--smoke`` (``make bench-smoke``) pipes 4 MiB once through
each and prints what ran, no figures.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import (
    BIN,
    MIB,
    RESULTS,
    SMOKE_SIZE_MIB,
    ForeignLoad,
    Gateway,
    RssSampler,
    make_workdir,
    mb_per_s,
)

# SIZE bytes to standard output: one random MiB, repeated, then the remainder.
PRODUCER = """
import os, sys
size, block = int(sys.argv[1]), os.urandom(1024 * 1024)
out = sys.stdout.buffer
while size >= len(block):
    out.write(block)
    size -= len(block)
out.write(block[:size])
"""


@dataclass
class Run:
    tool: str
    size_mib: int
    seconds: float
    mb_per_s: float
    client_peak_rss_mib: float
    client_cpu_seconds: float
    gateway_peak_rss_mib: float
    gateway_rss_growth_mib: float
    foreign_load_cores: float


class HighWaterMark:
    """A process's ``VmHWM`` (peak resident memory of its current program), read every 20 ms
    until the process is gone; the last reading is the peak."""

    def __init__(self, pid: int) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> None:
        try:
            text = self._status.read_text()
        except OSError:  # gone
            return
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_kib = max(self.peak_kib, int(line.split()[1]))

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._read()

    def __enter__(self) -> "HighWaterMark":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (before the process is reaped, so its pid cannot have been reused)."""
        self._stop.set()
        self._thread.join()
        self._read()

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def client_command(tool: str, gateway: Gateway, size_mib: int) -> list[str]:
    name = f"pipe-{size_mib}.bin"
    if tool == "ssbg backup -":
        return [
            str(BIN / "ssbg"),
            "backup",
            "-",
            "--filename",
            name,
            "--classification",
            "INTERNAL",
            "--source-system",
            "bench",
            "--json",
        ]
    return [
        "curl",
        "-sS",
        "--fail-with-body",
        "-H",
        "Expect:",
        "-H",
        f"X-API-Key: {gateway.api_key}",
        "-H",
        "Content-Type: application/octet-stream",
        "-X",
        "POST",
        "-T",
        "-",
        f"{gateway.url}/backups?classification=INTERNAL&source_system=bench&filename={name}",
    ]


def pipe_once(tool: str, gateway: Gateway, size_mib: int) -> Run:
    """``producer | client``; the client reaped with ``wait4`` for its own peak RSS."""
    size = size_mib * MIB
    env = {
        **os.environ,
        "SSBG_URL": gateway.url.removesuffix("/api/v1"),
        "SSBG_API_KEY": gateway.api_key,
    }
    with ForeignLoad(gateway.pid) as load, RssSampler(gateway.pid) as sampler:
        started = time.perf_counter()
        producer = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, str(size)], stdout=subprocess.PIPE
        )
        assert producer.stdout is not None
        client = subprocess.Popen(
            client_command(tool, gateway, size_mib),
            stdin=producer.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        producer.stdout.close()  # the client holds the only read end now
        with HighWaterMark(client.pid) as client_memory:
            # Wait for the client's end without reaping it (WNOWAIT), stop sampling, then
            # reap: the sampler never reads a /proc entry reused by another process.
            os.waitid(os.P_PID, client.pid, os.WEXITED | os.WNOWAIT)
            client_memory.stop()
        _pid, status, usage = os.wait4(client.pid, 0)
        seconds = time.perf_counter() - started
        client.returncode = os.waitstatus_to_exitcode(status)
        producer.wait()
    output = client.communicate()
    if client.returncode != 0:
        raise SystemExit(f"{tool} failed ({client.returncode}): {output[1].decode()[-2000:]}")
    record: dict[str, Any] = json.loads(output[0])
    record = record.get("data", record)  # curl prints the envelope, ssbg --json the record
    if record["status"] != "ACTIVE" or record["original_size"] != size:
        raise SystemExit(f"{tool}: unexpected record {record}")
    for done in (gateway.data_dir / "objects" / "backups").glob("*/data.enc"):
        done.unlink()  # keep the disk from filling up; the records do not matter here
    return Run(
        tool=tool,
        size_mib=size_mib,
        seconds=seconds,
        mb_per_s=mb_per_s(size, seconds),
        client_peak_rss_mib=client_memory.peak_kib / 1024,
        client_cpu_seconds=usage.ru_utime + usage.ru_stime,
        gateway_peak_rss_mib=sampler.peak / MIB,
        gateway_rss_growth_mib=sampler.growth_mib,
        foreign_load_cores=load.cores,
    )


def print_table(runs: list[Run]) -> None:
    header = (
        f"{'client':<14} {'size':>9} {'seconds':>8} {'MB/s':>7} {'client peak RSS':>16} "
        f"{'client CPU':>10} "
        f"{'gateway peak RSS':>17} {'(growth)':>9} {'other load':>10}"
    )
    print()
    print(header)
    for run in runs:
        size = f"{run.size_mib // 1024} GiB" if run.size_mib % 1024 == 0 else f"{run.size_mib} MiB"
        print(
            f"{run.tool:<14} {size:>9} {run.seconds:>8.1f} {run.mb_per_s:>7.1f} "
            f"{run.client_peak_rss_mib:>12.1f} MiB {run.client_cpu_seconds:>8.1f} s "
            f"{run.gateway_peak_rss_mib:>13.1f} MiB "
            f"{run.gateway_rss_growth_mib:>5.1f} MiB {run.foreign_load_cores:>6.2f} cores"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes-mib",
        default="256,5120",
        help="comma-separated sizes in MiB (default 256,5120: 256 MiB and 5 GiB)",
    )
    parser.add_argument("--no-curl", action="store_true", help="skip the curl -T - reference")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"pipe {SMOKE_SIZE_MIB} MiB once through each client; no figures, no results",
    )
    args = parser.parse_args()
    sizes = [SMOKE_SIZE_MIB] if args.smoke else [int(s) for s in args.sizes_mib.split(",")]
    tools = ["ssbg backup -"]
    if shutil.which("curl") and not args.no_curl:
        tools.append("curl -T -")
    workdir = make_workdir("pipe-work-")
    runs: list[Run] = []
    try:
        gateway = Gateway(workdir)
        gateway.start()
        try:
            for size_mib in sizes:
                for tool in tools:
                    print(f"{tool}: {size_mib} MiB ...", flush=True)
                    runs.append(pipe_once(tool, gateway, size_mib))
        finally:
            gateway.stop()
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.smoke:
        print(f"\npipe of {SMOKE_SIZE_MIB} MiB: smoke run, not a measurement")
        for tool in tools:
            print(f"  ran {tool}")
        return
    print_table(runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {"cpus": os.cpu_count(), "runs": [asdict(run) for run in runs]}
    (RESULTS / "pipe.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
