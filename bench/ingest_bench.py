"""Ingest benchmark: how close does the HTTP ingest get to the machine's in-process limit?

One run, on the local store, with SIZE bytes of random data (default 1 GiB):

(a)  the in-process limit — an independent minimal pipeline: SHA-512 of the plaintext and of
     the ciphertext each on its own thread, AES-256-GCM of 1 MiB segments on a third, writes
     to a file, final fsync. No HTTP, no gateway code.
(a') the gateway's own pipeline (``encrypt_stream`` into ``LocalObjectStore``), in process.
(b)  end to end through a real uvicorn serving the gateway: ``curl -H 'Expect:'`` uploading
     the file as a raw body and as multipart; the time until the 201 (which is sent only
     after fsync and the ACTIVE commit). The server's peak RSS growth is sampled meanwhile.
(c)  ``restic backup`` of the same file into a fresh local repository, when restic is
     installed.

Every measurement runs ``--runs`` times (default 3) and the median is reported (the best run
is in the JSON too). The development machine is shared: a measurement during which other
processes used more than ``--max-foreign-load`` cores is discarded and repeated, and the
report says how much foreign load the kept measurements saw. Prints MB/s (MB = 10^6 bytes),
(b)/(a), (b)/(c) and the peak RSS growth, and writes bench/results/ingest.json.
Usage: ``make bench-ingest`` or
``.venv/bin/python bench/ingest_bench.py [--size-mib 1024] [--runs 3] [--keep] [--smoke]``;
``--smoke`` (``make bench-smoke``) runs each measurement once on 4 MiB and prints what ran,
no figures.
"""

import argparse
import asyncio
import hashlib
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from harness import (
    MIB,
    Gateway,
    Measurements,
    RssSampler,
    add_common_arguments,
    curl_upload,
    make_payload,
    make_workdir,
    parse_common_arguments,
    warm_page_cache,
)

from ssbg.infrastructure.crypto.object_format import ObjectHeader, SegmentSealer, generate_dek
from ssbg.infrastructure.crypto.stream_encryption import encrypt_stream
from ssbg.infrastructure.storage.local import LocalObjectStore

SEGMENT = MIB
READ_CHUNK = 256 * 1024


def segments_of(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(SEGMENT):
            yield block


# -- (a) an independent, minimal threaded pipeline ----------------------------------------


def reference_pipeline(source: Path, target: Path) -> float:
    """SHA-512(plaintext) ‖ AES-GCM → SHA-512(ciphertext) + write, three threads, fsync."""
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    header = b"bench-header"
    plain_q: queue.Queue[bytes | None] = queue.Queue(4)
    seal_q: queue.Queue[tuple[int, bytes, bool] | None] = queue.Queue(4)
    out_q: queue.Queue[bytes | None] = queue.Queue(4)
    digests: dict[str, str] = {}

    def hash_plain() -> None:
        digest = hashlib.sha512()
        while (block := plain_q.get()) is not None:
            digest.update(block)
        digests["plain"] = digest.hexdigest()

    def seal() -> None:
        while (item := seal_q.get()) is not None:
            index, block, last = item
            nonce = index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
            out_q.put(aead.encrypt(nonce, block, header))
        out_q.put(None)

    def hash_and_write() -> None:
        digest = hashlib.sha512(header)
        with target.open("wb") as handle:
            handle.write(header)
            while (sealed := out_q.get()) is not None:
                digest.update(sealed)
                handle.write(sealed)
            handle.flush()
            os.fsync(handle.fileno())
        digests["cipher"] = digest.hexdigest()

    threads = [threading.Thread(target=f) for f in (hash_plain, seal, hash_and_write)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    size = source.stat().st_size
    total = (size + SEGMENT - 1) // SEGMENT
    for index, block in enumerate(segments_of(source)):
        plain_q.put(block)
        seal_q.put((index, block, index == total - 1))
    plain_q.put(None)
    seal_q.put(None)
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


# -- (a') the gateway's own pipeline, in process ------------------------------------------


async def gateway_pipeline(source: Path, store_root: Path) -> float:
    store = LocalObjectStore(store_root)
    backup_id = uuid4()
    header = ObjectHeader(backup_id, "P-001", SEGMENT).encode()

    async def chunks() -> AsyncIterator[bytes]:
        with source.open("rb") as handle:
            while block := await asyncio.to_thread(handle.read, READ_CHUNK):
                yield block

    started = time.perf_counter()
    async with store.open_writer(f"backups/{backup_id}/data.enc") as writer:
        await encrypt_stream(
            chunks(),
            sealer=SegmentSealer(generate_dek(), header),
            header=header,
            writer=writer,
            segment_size=SEGMENT,
            max_plaintext_bytes=1 << 62,
        )
    return time.perf_counter() - started


# -- (c) restic ---------------------------------------------------------------------------


def restic_backup(source: Path, workdir: Path) -> float | None:
    restic = shutil.which("restic")
    if restic is None:
        return None
    repo = workdir / "restic-repo"
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(repo)}
    subprocess.run([restic, "init", "--quiet"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    subprocess.run(
        [restic, "backup", "--quiet", str(source)], env=env, check=True, capture_output=True
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_common_arguments(parser)
    args = parse_common_arguments(parser)
    size = args.size_mib * MIB
    workdir = make_workdir("ingest-work-")
    measurements = Measurements(size, args.max_foreign_load)
    measure = measurements.measure
    rss: dict[str, float] = {}

    try:
        source = workdir / "payload.bin"
        print(f"generating {args.size_mib} MiB of random data in {workdir} ...", flush=True)
        make_payload(source, size)
        gateway = Gateway(workdir)
        gateway.start()
        server_pid = gateway.pid

        def run_reference() -> tuple[float, None]:
            warm_page_cache(source)
            seconds = reference_pipeline(source, workdir / "reference.enc")
            (workdir / "reference.enc").unlink()
            return seconds, None

        def run_gateway_pipeline() -> tuple[float, None]:
            warm_page_cache(source)
            store = workdir / "pipeline-store"
            seconds = asyncio.run(gateway_pipeline(source, store))
            shutil.rmtree(store)
            return seconds, None

        def run_http(multipart: bool) -> tuple[float, float]:
            warm_page_cache(source)
            with RssSampler(server_pid) as sampler:
                seconds, stored = curl_upload(gateway, source, multipart)
            assert stored["status"] == "ACTIVE"
            assert stored["original_size"] == size
            for done in (workdir / "data" / "objects" / "backups").glob("*/data.enc"):
                done.unlink()
            return seconds, sampler.growth_mib

        def run_restic() -> tuple[float, None]:
            warm_page_cache(source)
            seconds = restic_backup(source, workdir)
            shutil.rmtree(workdir / "restic-repo", ignore_errors=True)
            assert seconds is not None
            return seconds, None

        try:
            for run in range(args.runs):
                print(f"run {run + 1}/{args.runs} ...", flush=True)
                measure("a", None, run_reference)
                measure("a_gateway", None, run_gateway_pipeline)
                for name, multipart in (("b_raw", False), ("b_multipart", True)):
                    growth = measure(name, server_pid, lambda m=multipart: run_http(m))
                    rss[name] = max(rss.get(name, 0.0), growth)
                if shutil.which("restic"):
                    measure("c", None, run_restic)
        finally:
            gateway.stop()
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(args.size_mib, measurements, rss, smoke=args.smoke)


def report(
    size_mib: int, measurements: Measurements, rss: dict[str, float], *, smoke: bool = False
) -> None:
    labels = {
        "a": "(a)  in-process limit (reference pipeline)",
        "a_gateway": "(a') gateway pipeline, in process",
        "b_raw": "(b)  HTTP raw body (uvicorn, curl -T)",
        "b_multipart": "(b)  HTTP multipart (uvicorn, curl -F)",
        "c": "(c)  restic backup",
    }
    median = measurements.medians()
    a, c = median["a"], median.get("c")
    ratios = {
        "b_raw_over_a": median["b_raw"] / a,
        "b_multipart_over_a": median["b_multipart"] / a,
        "b_raw_over_c": median["b_raw"] / c if c else None,
        "b_multipart_over_c": median["b_multipart"] / c if c else None,
    }
    if smoke:  # the figures of 4 MiB measured once mean nothing: say what ran
        measurements.print_smoke_summary(f"ingest of {size_mib} MiB", labels)
        return
    measurements.print_table(
        f"ingest of {size_mib} MiB, median of {len(measurements.samples['a'])}", labels
    )
    for name in ("b_raw", "b_multipart"):
        print(f"server peak RSS growth, {labels[name][5:]}: {rss[name]:.1f} MiB")
    print(measurements.foreign_load_summary())
    measurements.write_results("ingest.json", size_mib, ratios, rss)


if __name__ == "__main__":
    main()
