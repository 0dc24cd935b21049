"""Restore benchmark: verify pass, download and end-to-end restore against the in-process limit.

One run, on the local store, with SIZE bytes of random data (default 1 GiB) uploaded once
through the API (raw body) as an INTERNAL backup — which an admin restores without MFA at
incident level 0 (policy rules P3/P3b/P3c), so no TOTP code is spent per request:

(a)  the in-process limit — an independent minimal pipeline over the stored ``data.enc``:
     reads 1 MiB segments, SHA-512 of the ciphertext and of the plaintext each on its own
     thread, AES-256-GCM decryption of the segments on a third. No HTTP, no gateway code (the
     DEK is unwrapped with the gateway's key store beforehand, outside the timing).
(a') the gateway's own verify pass (``verify_object`` over ``LocalObjectStore``), in process.
(b1) the verify pass through a real uvicorn: ``POST /restores`` until its 201 — the gateway
     decrypts and verifies the whole backup, checks both checksums, then issues the token.
(b2) the download alone: ``GET /restores/{id}/download`` with ``X-Restore-Token``, streamed by
     curl to /dev/null, until curl exits — the gateway's download path;
(b2f) the same into a file: curl hands its output to the file 16 KiB at a time (two write
     calls each), which costs curl itself 1-1.5 CPU-ms per MiB here.
(b3) end to end: from sending ``POST /restores`` to the last downloaded byte written to a file.
(b3n) the same with curl writing to /dev/null: the gateway's share of (b3), without the cost
     of the client's file. On this kind of VM, freed guest memory is handed back to the host
     (virtio-balloon free page reporting), so writing 1 GiB into the page cache runs at
     ~0.35-0.45 GB/s the first time and ~4.7 GB/s into recently freed pages: (b2f), (b3)
     and (c) all pay it; restic hides it behind its own decryption, a restore cannot hide it
     behind the verify pass, which must end before any byte is released.
(b4) end to end as an operator runs it: ``ssbg restore BACKUP_ID --output FILE`` — request,
     download (written with ``O_DIRECT`` where the filesystem allows it), the client's own
     SHA-512 check against the gateway's header, fsync and rename. Not the goal's row (restic
     neither checks a whole-file hash nor fsyncs); its ratio to (c) is printed too.
(d)  the file alone: SIZE bytes from memory written into a new file in the same directory, 1 MiB
     per write, no fsync (as curl and restic write) — what this disk and page cache allow any
     client. A restore must finish its verify pass before it releases a byte, so its end to end
     cannot beat the verify pass followed by (d): the table prints that floor, taken with the
     verify pass at the in-process limit, 1 / (1/(a) + 1/(d)), and its ratio to restic, which
     overlaps its own decryption with its writes.
(c)  ``restic restore`` of the same file from a fresh local restic repository (the backup into
     it is not timed), when restic is installed.
curl and restic write to the same directory (``--restore-dir``, default: the work directory on
the repository's disk), after a ``sync`` so no earlier write-back competes.

Before the runs, one restore of a 1 KiB backup (not timed) makes the gateway load the key
version's private key, which it keeps. The downloaded file's SHA-512 is checked against the
source's once. The server's peak RSS growth is sampled during (b1)-(b3). Every measurement
runs ``--runs`` times (default 3); the median is reported (the best run is in the JSON too).
Measurements during which other processes used more than ``--max-foreign-load`` cores are
discarded and repeated (shared machine). MB/s counts plaintext bytes (MB = 10^6 bytes).
Writes bench/results/restore.json. Usage: ``make bench-restore`` or
``.venv/bin/python bench/restore_bench.py [--size-mib 1024] [--runs 3] [--keep] [--smoke]``;
``--smoke`` (``make bench-smoke``) runs each measurement once on 4 MiB and prints what ran,
no figures and no goals.
"""

import argparse
import asyncio
import functools
import hashlib
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from harness import (
    MIB,
    PASSWORD,
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

from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
from ssbg.infrastructure.crypto.object_format import (
    DATA_HEADER_MAX_BYTES,
    TAG_BYTES,
    ObjectHeader,
    dek_resolver_for,
    unwrap_dek,
)
from ssbg.infrastructure.crypto.stream_decryption import verify_object
from ssbg.infrastructure.storage.layout import wrapped_dek_key
from ssbg.infrastructure.storage.local import LocalObjectStore

DOWNLOAD_GOAL_MB_S = 400.0
RSS_GOAL_MIB = 100.0
VERIFY_GOAL = 0.8  # (b1) / (a)
END_TO_END_GOAL = 1.0  # (b3) / (c)
# The bench makes a few restores per run with one key: lift the hourly limits (P5, P6).
RATE_LIMITS = {
    "SSBG_MAX_RESTORES_PER_KEY_PER_HOUR": "100000",
    "SSBG_MAX_RESTORES_PER_HOUR": "100000",
}


@dataclass(frozen=True)
class StoredBackup:
    """The uploaded backup as the gateway recorded it, and its objects on disk."""

    backup_id: UUID
    key_version: str
    storage_ref: str
    wrapped_dek_ref: str
    checksum_plaintext: str
    checksum_ciphertext: str
    data_path: Path

    @classmethod
    def of(cls, record: dict[str, Any], store_root: Path) -> "StoredBackup":
        backup_id = UUID(record["backup_id"])
        return cls(
            backup_id=backup_id,
            key_version=record["key_version"],
            storage_ref=record["storage_ref"],
            wrapped_dek_ref=wrapped_dek_key(backup_id),
            checksum_plaintext=record["checksum_plaintext"],
            checksum_ciphertext=record["checksum_ciphertext"],
            data_path=store_root / record["storage_ref"],
        )


def read_header(data_path: Path) -> ObjectHeader:
    with data_path.open("rb") as handle:
        return ObjectHeader.parse(handle.read(DATA_HEADER_MAX_BYTES))[0]


def sha512_of(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        while block := handle.read(16 * MIB):
            digest.update(block)
    return digest.hexdigest()


# -- (a) an independent, minimal threaded pipeline ----------------------------------------


def reference_restore(data_path: Path, dek: bytes) -> tuple[float, str, str]:
    """Read ‖ SHA-512(ciphertext) ‖ AES-GCM open → SHA-512(plaintext): (seconds, both hex)."""
    aead = AESGCM(dek)
    cipher_q: queue.Queue[bytes | None] = queue.Queue(4)
    open_q: queue.Queue[tuple[int, bytes, bool] | None] = queue.Queue(4)
    plain_q: queue.Queue[bytes | None] = queue.Queue(4)
    digests: dict[str, str] = {}

    with data_path.open("rb") as handle:  # the header is parsed before the clock starts
        prefix = handle.read(DATA_HEADER_MAX_BYTES)
    header, header_length = ObjectHeader.parse(prefix)
    aad = prefix[:header_length]
    sealed_size = header.segment_size + TAG_BYTES
    body = data_path.stat().st_size - header_length
    total = (body + sealed_size - 1) // sealed_size
    started = time.perf_counter()
    handle = data_path.open("rb")
    handle.seek(header_length)

    def hash_cipher() -> None:
        digest = hashlib.sha512(aad)
        while (block := cipher_q.get()) is not None:
            digest.update(block)
        digests["cipher"] = digest.hexdigest()

    def open_segments() -> None:
        while (item := open_q.get()) is not None:
            index, block, last = item
            nonce = index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
            plain_q.put(aead.decrypt(nonce, block, aad))
        plain_q.put(None)

    def hash_plain() -> None:
        digest = hashlib.sha512()
        while (block := plain_q.get()) is not None:
            digest.update(block)
        digests["plain"] = digest.hexdigest()

    threads = [threading.Thread(target=f) for f in (hash_cipher, open_segments, hash_plain)]
    for thread in threads:
        thread.start()
    with handle:
        index = 0
        while block := handle.read(sealed_size):
            cipher_q.put(block)
            open_q.put((index, block, index == total - 1))
            index += 1
    cipher_q.put(None)
    open_q.put(None)
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, digests["cipher"], digests["plain"]


# -- (a') the gateway's own verify pass, in process ---------------------------------------


async def gateway_verify(backup: StoredBackup, store_root: Path, keys: FileKeyStore) -> float:
    store = LocalObjectStore(store_root)
    wrapped = await store.read_bytes(backup.wrapped_dek_ref)
    private_key = keys.load_private_key(backup.key_version)  # loaded once, before any timing
    # The chunk size the restore service reads with: one sealed segment.
    chunk = read_header(backup.data_path).segment_size + TAG_BYTES
    started = time.perf_counter()
    decryptor = ObjectDecryptor(
        dek_resolver_for(wrapped, private_key, expected_key_version=backup.key_version),
        expected_backup_id=backup.backup_id,
    )
    header_length = ObjectHeader.encoded_length(backup.key_version)
    chunks = store.read_stream(backup.storage_ref, chunk, first_chunk_size=header_length)
    verified = await verify_object(chunks, decryptor)
    seconds = time.perf_counter() - started
    if (verified.checksum_ciphertext, verified.checksum_plaintext) != (
        backup.checksum_ciphertext,
        backup.checksum_plaintext,
    ):
        raise SystemExit("(a') verify_object computed other checksums than the gateway recorded")
    return seconds


# -- (b) through uvicorn ------------------------------------------------------------------


def request_restore(gateway: Gateway, backup_id: UUID) -> tuple[float, str, str]:
    """``POST /restores`` until the 201; (seconds, download URL, token)."""
    with httpx.Client(timeout=3600) as client:
        started = time.perf_counter()
        response = client.post(
            f"{gateway.url}/restores",
            headers={"X-API-Key": gateway.api_key},
            json={"backup_id": str(backup_id), "justification": "restore benchmark run"},
        )
        seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise SystemExit(f"POST /restores answered {response.status_code}: {response.text}")
    download = response.json()["data"]["download"]
    origin = gateway.url.removesuffix("/api/v1")
    return seconds, origin + download["url"], download["token"]


def curl_download(gateway: Gateway, url: str, token: str, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            "curl",
            "-sS",
            "--fail",
            "-H",
            f"X-API-Key: {gateway.api_key}",
            "-H",
            f"X-Restore-Token: {token}",
            "-o",
            str(target),
            url,
        ],
        check=True,
    )
    return time.perf_counter() - started


def ssbg_restore(gateway: Gateway, backup_id: UUID, target: Path) -> float:
    """``ssbg restore`` (the client command) from start to the renamed, verified file."""
    env = {
        **os.environ,
        "SSBG_URL": gateway.url.removesuffix("/api/v1"),
        "SSBG_API_KEY": gateway.api_key,
    }
    command = [str(Path(sys.executable).with_name("ssbg")), "restore", str(backup_id)]
    command += ["--justification", "restore benchmark run", "--output", str(target), "--json"]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def warm_up(gateway: Gateway, workdir: Path) -> None:
    """Restore a 1 KiB backup once (not timed): the gateway loads the key version's private key
    (PBKDF2, 600,000 iterations) on its first restore and keeps it, as any gateway that has
    served a restore does; the timed restores then measure the restore itself."""
    small = workdir / "warm-up.bin"
    small.write_bytes(os.urandom(1024))
    _seconds, record = curl_upload(gateway, small, multipart=False)
    _verify, url, token = request_restore(gateway, UUID(record["backup_id"]))
    curl_download(gateway, url, token, workdir / "warm-up.restored")


# -- (c) restic ---------------------------------------------------------------------------


def restic_env(workdir: Path) -> dict[str, str]:
    repo = workdir / "restic-repo"
    return {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(repo)}


def restic_prepare(source: Path, workdir: Path) -> bool:
    """A fresh repository holding one snapshot of ``source`` (not timed)."""
    restic = shutil.which("restic")
    if restic is None:
        return False
    env = restic_env(workdir)
    subprocess.run([restic, "init", "--quiet"], env=env, check=True, capture_output=True)
    subprocess.run(
        [restic, "backup", "--quiet", str(source)], env=env, check=True, capture_output=True
    )
    return True


def restic_restore(workdir: Path, target: Path) -> float:
    restic = shutil.which("restic")
    assert restic is not None
    started = time.perf_counter()
    subprocess.run(
        [restic, "restore", "latest", "--target", str(target)],
        env=restic_env(workdir),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def write_file(target: Path, size: int) -> float:
    """(d): ``size`` bytes from memory into a new file, 1 MiB per write, no fsync."""
    piece = os.urandom(MIB)
    started = time.perf_counter()
    with target.open("wb", buffering=0) as handle:
        for _ in range(size // MIB):
            handle.write(piece)
        handle.write(piece[: size % MIB])
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def files_under(directory: Path) -> Iterator[Path]:
    return (path for path in directory.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--restore-dir",
        type=Path,
        default=None,
        help="where curl and restic write the restored file (default: the work directory, on "
        "the repository's disk; both write to the same place)",
    )
    args = parse_common_arguments(parser)
    size = args.size_mib * MIB
    workdir = make_workdir("restore-work-")
    targets = Path(tempfile.mkdtemp(prefix="restored-", dir=args.restore_dir or workdir))
    measurements = Measurements(size, args.max_foreign_load)
    measure = measurements.measure
    rss: dict[str, float] = {}

    try:
        source = workdir / "payload.bin"
        print(f"generating {args.size_mib} MiB of random data in {workdir} ...", flush=True)
        make_payload(source, size)
        source_sha512 = sha512_of(source)
        gateway = Gateway(workdir, RATE_LIMITS)
        gateway.start()
        server_pid = gateway.pid
        store_root = gateway.data_dir / "objects"
        keys = FileKeyStore(gateway.data_dir / "keys", PASSWORD)
        restored = targets / "restored.bin"

        try:
            print("uploading it once through the API ...", flush=True)
            _seconds, record = curl_upload(gateway, source, multipart=False)
            if record["status"] != "ACTIVE" or record["checksum_plaintext"] != source_sha512:
                raise SystemExit(f"the upload did not store the payload: {record}")
            backup = StoredBackup.of(record, store_root)
            header = read_header(backup.data_path)
            dek = unwrap_dek(
                (store_root / backup.wrapped_dek_ref).read_bytes(),
                keys.load_private_key(backup.key_version),
                backup_id=header.backup_id,
                key_version=header.key_version,
            )
            warm_up(gateway, workdir)
            has_restic = restic_prepare(source, workdir)
            checked: list[bool] = []

            def run_reference() -> tuple[float, None]:
                warm_page_cache(backup.data_path)
                seconds, cipher, plain = reference_restore(backup.data_path, dek)
                if (cipher, plain) != (backup.checksum_ciphertext, backup.checksum_plaintext):
                    raise SystemExit("(a) the reference pipeline computed other checksums")
                return seconds, None

            def run_gateway_verify() -> tuple[float, None]:
                warm_page_cache(backup.data_path)
                return asyncio.run(gateway_verify(backup, store_root, keys)), None

            def run_verify_pass() -> tuple[float, tuple[float, str, str]]:
                warm_page_cache(backup.data_path)
                with RssSampler(server_pid) as sampler:
                    seconds, url, token = request_restore(gateway, backup.backup_id)
                return seconds, (sampler.growth_mib, url, token)

            def finish_download() -> None:
                if restored.stat().st_size != size:
                    raise SystemExit(f"the download has {restored.stat().st_size} bytes")
                if not checked:
                    if sha512_of(restored) != source_sha512:
                        raise SystemExit("the downloaded file differs from the source (SHA-512)")
                    checked.append(True)
                restored.unlink()

            def run_download(url: str, token: str, to_file: bool) -> tuple[float, float]:
                warm_page_cache(backup.data_path)
                os.sync()  # no earlier write-back competes with this measurement
                with RssSampler(server_pid) as sampler:
                    target = restored if to_file else Path(os.devnull)
                    seconds = curl_download(gateway, url, token, target)
                if to_file:
                    finish_download()
                return seconds, sampler.growth_mib

            def run_end_to_end() -> tuple[float, float]:
                warm_page_cache(backup.data_path)
                os.sync()
                with RssSampler(server_pid) as sampler:
                    started = time.perf_counter()
                    _verify, url, token = request_restore(gateway, backup.backup_id)
                    curl_download(gateway, url, token, restored)
                    seconds = time.perf_counter() - started
                finish_download()
                return seconds, sampler.growth_mib

            def run_end_to_end_devnull() -> tuple[float, float]:
                warm_page_cache(backup.data_path)
                with RssSampler(server_pid) as sampler:
                    started = time.perf_counter()
                    _verify, url, token = request_restore(gateway, backup.backup_id)
                    curl_download(gateway, url, token, Path(os.devnull))
                    seconds = time.perf_counter() - started
                return seconds, sampler.growth_mib

            def run_client() -> tuple[float, float]:
                warm_page_cache(backup.data_path)
                os.sync()
                with RssSampler(server_pid) as sampler:
                    seconds = ssbg_restore(gateway, backup.backup_id, restored)
                finish_download()
                return seconds, sampler.growth_mib

            def run_restic() -> tuple[float, None]:
                for path in files_under(workdir / "restic-repo"):
                    warm_page_cache(path)
                os.sync()
                target = targets / "restic-restore"
                seconds = restic_restore(workdir, target)
                shutil.rmtree(target)
                return seconds, None

            def run_file_alone() -> tuple[float, None]:
                os.sync()
                return write_file(restored, size), None

            def note_rss(name: str, growth: float) -> None:
                rss[name] = max(rss.get(name, 0.0), growth)

            for run in range(args.runs):
                print(f"run {run + 1}/{args.runs} ...", flush=True)
                measure("a", None, run_reference)
                measure("a_gateway", None, run_gateway_verify)
                growth, url, token = measure("b1_verify", server_pid, run_verify_pass)
                note_rss("b1_verify", growth)
                for name, to_file in (("b2_download", False), ("b2_download_file", True)):
                    run_it = functools.partial(run_download, url, token, to_file)
                    note_rss(name, measure(name, server_pid, run_it))
                note_rss("b3_end_to_end", measure("b3_end_to_end", server_pid, run_end_to_end))
                note_rss(
                    "b3_end_to_end_devnull",
                    measure("b3_end_to_end_devnull", server_pid, run_end_to_end_devnull),
                )
                note_rss("b4_client", measure("b4_client", server_pid, run_client))
                measure("d_file", None, run_file_alone)
                if has_restic:
                    measure("c", None, run_restic)
        finally:
            gateway.stop()
    finally:
        shutil.rmtree(targets, ignore_errors=True)
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
        "a_gateway": "(a') gateway verify_object, in process",
        "b1_verify": "(b1) verify pass: POST /restores until 201",
        "b2_download": "(b2) download alone (curl to /dev/null)",
        "b2_download_file": "(b2f) download alone, curl to a file",
        "b3_end_to_end": "(b3) end to end: POST to last byte in a file",
        "b3_end_to_end_devnull": "(b3n) end to end, curl to /dev/null",
        "b4_client": "(b4) end to end, `ssbg restore` (checked, fsynced)",
        "d_file": "(d)  the file alone: 1 MiB writes, no fsync",
        "c": "(c)  restic restore",
    }
    median = measurements.medians()
    a, c = median["a"], median.get("c")
    verify_ratio = median["b1_verify"] / a
    end_to_end_ratio = median["b3_end_to_end"] / c if c else None
    floor = 1 / (1 / a + 1 / median["d_file"])  # the verify pass at (a), then the file
    download = median["b2_download"]
    rss_peak = max(rss.values())
    ratios = {
        "b1_verify_over_a": verify_ratio,
        "a_gateway_over_a": median["a_gateway"] / a,
        "b3_end_to_end_over_c": end_to_end_ratio,
        "b3n_end_to_end_devnull_over_c": median["b3_end_to_end_devnull"] / c if c else None,
        "b4_client_over_c": median["b4_client"] / c if c else None,
        "verify_then_file_floor_mb_per_s": floor,
        "verify_then_file_floor_over_c": floor / c if c else None,
        "b2_download_over_goal": download / DOWNLOAD_GOAL_MB_S,
    }
    if smoke:  # the figures of 4 MiB measured once mean nothing: say what ran
        measurements.print_smoke_summary(f"restore of {size_mib} MiB", labels)
        return
    measurements.print_table(
        f"restore of {size_mib} MiB, median of {len(measurements.samples['a'])}", labels
    )

    def verdict(met: bool | None) -> str:
        return "n/a" if met is None else ("met" if met else "MISSED")

    print()
    print(
        f"goal: verify pass >= {VERIFY_GOAL} x (a): (b1)/(a) = {verify_ratio:.2f} "
        f"-> {verdict(verify_ratio >= VERIFY_GOAL)}"
    )
    shown = f"{end_to_end_ratio:.2f}" if end_to_end_ratio is not None else "n/a (no restic)"
    print(
        f"goal: end to end >= {END_TO_END_GOAL} x restic: (b3)/(c) = {shown} -> "
        f"{verdict(None if end_to_end_ratio is None else end_to_end_ratio >= END_TO_END_GOAL)}"
    )
    if c:
        print(
            f"      floor under the contract, verify pass at (a) then (d): {floor:.1f} MB/s "
            f"= {floor / c:.2f} x restic"
        )
        print(
            f"      with the client (b4)/(c) = {median['b4_client'] / c:.2f} (whole-file "
            "SHA-512, fsync and process start included)"
        )
    print(
        f"goal: download >= {DOWNLOAD_GOAL_MB_S:.0f} MB/s: (b2) = {download:.1f} MB/s -> "
        f"{verdict(download >= DOWNLOAD_GOAL_MB_S)}"
    )
    for name in rss:
        print(f"server peak RSS growth, {labels[name].split(') ', 1)[1]}: {rss[name]:.1f} MiB")
    print(
        f"goal: server RSS growth < {RSS_GOAL_MIB:.0f} MiB: {rss_peak:.1f} MiB -> "
        f"{verdict(rss_peak < RSS_GOAL_MIB)}"
    )
    print(measurements.foreign_load_summary())
    measurements.write_results("restore.json", size_mib, ratios, rss)


if __name__ == "__main__":
    main()
