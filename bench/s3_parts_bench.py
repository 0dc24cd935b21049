"""S3 part-upload benchmark: ``SSBG_S3_PART_CONCURRENCY`` against moto, near and far.

Starts moto's S3 server (``python -m moto.server``) on loopback and two relays in front of it
that delay every byte by half of ``--rtt-ms`` (default 30) in each direction — a store 30 ms
away: one with no bandwidth limit of its own, one that also keeps at most ``--window-kib``
(default 1024) unacknowledged per connection and direction, as TCP does on a long link (one
connection then carries at most a window per round trip: 35 MB/s). Through each of the three
paths it uploads ``--size-mib`` (default 256) with
:class:`ssbg.infrastructure.storage.s3.S3ObjectStore` (``open_writer``, 1 MiB writes, a bucket
of its own) at part concurrency 1, 4 and 8, each upload in a fresh process so its peak
resident memory is its own; ``--runs`` (default 3) of each, medians reported, a run during which
other processes used more than ``--max-foreign-load`` cores discarded and repeated (the moto
server and the relays are ours, not foreign).

The table: path, concurrency, MB/s (median and best), and the uploading process's peak RSS
growth during the upload (median MiB). Usage: ``make bench-s3-parts`` or ``.venv/bin/python
bench/s3_parts_bench.py [--size-mib N] [--rtt-ms N] [--window-kib N] [--runs N] [--smoke]``;
``--smoke`` (``make bench-smoke``) uploads 17 MiB (three parts) once per cell and prints what
ran, no figures.
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid

import httpx
import psutil
from harness import MIB, Measurements, add_common_arguments, parse_common_arguments

from ssbg.infrastructure.storage.s3 import PART_SIZE, S3ObjectStore

CONCURRENCIES = (1, 4, 8)
SMOKE_SIZE = 2 * PART_SIZE + MIB  # three parts: the multipart path, in parallel
RELAY_CHUNK = 256 * 1024


# -- the relay: a store far away --------------------------------------------------------------


async def _delayed_pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, window: int
) -> None:
    """Copy ``reader`` to ``writer``, each chunk delivered ``delay`` seconds after it came.

    With a ``window`` (bytes, 0: none), at most that much is sent and not yet acknowledged, an
    acknowledgement taking ``delay`` to come back: one connection then carries at most
    ``window`` per round trip, as TCP does on a long link.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    unacknowledged = 0
    acknowledged = asyncio.Event()

    def acknowledge(size: int) -> None:
        nonlocal unacknowledged
        unacknowledged -= size
        acknowledged.set()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                return
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(chunk)
            await writer.drain()
            loop.call_later(delay, acknowledge, len(chunk))

    delivering = asyncio.create_task(deliver())
    try:
        while True:
            while window and unacknowledged >= window:
                acknowledged.clear()
                await acknowledged.wait()
            chunk = await reader.read(min(RELAY_CHUNK, window or RELAY_CHUNK))
            if not chunk:
                break
            unacknowledged += len(chunk)
            queue.put_nowait((loop.time() + delay, chunk))
        queue.put_nowait((0.0, b""))
        await delivering
    except (ConnectionError, OSError):
        pass
    finally:
        delivering.cancel()
        writer.close()


async def _relay(upstream_port: int, one_way: float, window: int) -> None:
    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(
            _delayed_pipe(reader, up_writer, one_way, window),
            _delayed_pipe(up_reader, writer, one_way, window),
        )

    server = await asyncio.start_server(connect, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


# -- one upload, in a process of its own ------------------------------------------------------


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


async def _upload(endpoint: str, concurrency: int, size: int) -> dict[str, float]:
    store = S3ObjectStore(
        bucket=f"bench-{uuid.uuid4().hex[:12]}",
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",  # noqa: S106 (moto accepts any)
        create_bucket=True,
        part_concurrency=concurrency,
    )
    chunk = os.urandom(MIB)
    try:
        await store.client()  # the bucket, and a connection, before the clock starts
        baseline = _rss()
        started = time.perf_counter()
        async with store.open_writer("bench/data.enc") as writer:
            for offset in range(0, size, MIB):
                await writer.write(chunk[: min(MIB, size - offset)])
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if await store.size("bench/data.enc") != size:
            raise SystemExit("the stored object has the wrong size")
        await store.delete("bench/data.enc")
    finally:
        await store.close()
    return {"seconds": seconds, "rss_growth_mib": max(0, peak - baseline) / MIB}


def _upload_in_child(endpoint: str, concurrency: int, size: int) -> tuple[float, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--upload", endpoint, str(concurrency), str(size)],
        capture_output=True,
        check=True,
    )
    measured = json.loads(result.stdout)
    return float(measured["seconds"]), float(measured["rss_growth_mib"])


# -- the servers ------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_moto() -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return process, port
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("moto did not start")


def _start_relay(
    upstream_port: int, rtt_ms: float, window: int
) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--relay", str(upstream_port), str(rtt_ms / 2000), str(window)],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


# -- the bench --------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--upload":
        measured = asyncio.run(_upload(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
        print(json.dumps(measured))
        return
    if len(sys.argv) == 5 and sys.argv[1] == "--relay":
        asyncio.run(_relay(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    parser.add_argument("--window-kib", type=int, default=1024)
    parser.set_defaults(size_mib=256)
    args = parse_common_arguments(parser)
    size = SMOKE_SIZE if args.smoke else args.size_mib * MIB

    moto, moto_port = _start_moto()
    far, far_port = _start_relay(moto_port, args.rtt_ms, 0)
    narrow, narrow_port = _start_relay(moto_port, args.rtt_ms, args.window_kib * 1024)
    relays = [far, narrow]
    paths = {
        "loopback": f"http://127.0.0.1:{moto_port}",
        f"{args.rtt_ms:g} ms": f"http://127.0.0.1:{far_port}",
        f"{args.rtt_ms:g} ms, {args.window_kib} KiB": f"http://127.0.0.1:{narrow_port}",
    }
    measurements = Measurements(size, args.max_foreign_load)
    rss: dict[str, list[float]] = {}
    try:
        for _run in range(args.runs):
            for path, endpoint in paths.items():
                for concurrency in CONCURRENCIES:
                    name = f"{path} / {concurrency}"
                    growth = measurements.measure(
                        name,
                        [moto.pid, *(relay.pid for relay in relays)],
                        lambda e=endpoint, c=concurrency: _upload_in_child(e, c, size),
                    )
                    rss.setdefault(name, []).append(growth)
    finally:
        for process in [*relays, moto]:
            _stop(process)

    labels = {f"{p} / {c}": f"{p}, {c}" for p in paths for c in CONCURRENCIES}
    if args.smoke:
        measurements.print_smoke_summary("S3 part uploads", labels)
        return
    median = measurements.medians()
    print()
    print(
        f"S3 part uploads: {args.size_mib} MiB through S3ObjectStore to moto, {os.cpu_count()} CPUs"
    )
    width = max(len(path) for path in paths)
    print(f"{'path':<{width}} {'parts':>5} {'MB/s':>7} {'best':>7} {'peak RSS MiB':>13}")
    for path in paths:
        for concurrency in CONCURRENCIES:
            name = f"{path} / {concurrency}"
            print(
                f"{path:<{width}} {concurrency:>5} {median[name]:>7.1f} "
                f"{max(measurements.samples[name]):>7.1f} {statistics.median(rss[name]):>13.0f}"
            )
    print(measurements.foreign_load_summary())
    measurements.write_results(
        "s3_parts.json",
        args.size_mib,
        {},
        {name: statistics.median(values) for name, values in rss.items()},
    )


if __name__ == "__main__":
    main()
