"""Key files benchmark: what one password guess costs an attacker who copied a key file.

For each kind of password-protected file the gateway writes (and for the PKCS#12 files of
earlier versions, for comparison) the time of one *wrong* guess, through the cheapest check
the file offers: the median of ``--runs`` guesses, in ms, on this machine, one core.

* ``P-NNN.private.pem`` / ``audit-signing.private.pem`` — PKCS#8 PBES2: the full PBKDF2
  derivation, then AES-CBC and a padding check.
* ``mfa-seal.key`` — PBKDF2, then the AES-GCM tag.
* ``*.private.p12`` (earlier versions) — the PKCS#12 MAC, keyed at 2,048 iterations: a guess
  is rejected there, before the 600,000-round key bag is touched.

Usage: ``make bench-keyfiles`` or
``.venv/bin/python bench/key_files_bench.py [--runs 5] [--smoke]``; ``--smoke`` guesses once
per file and prints no figures.
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from ssbg.domain.errors import KeyUnavailable
from ssbg.infrastructure.crypto.key_files import MIN_ITERATIONS, decrypt_private_key
from ssbg.infrastructure.crypto.key_store import (
    MFA_SEAL_FILE,
    FileKeyStore,
    load_legacy_private_key,
)

PASSWORD = "bench-key-password-not-secret"  # noqa: S105 (a throwaway key store)
GUESS = b"a wrong guess"


def legacy_pkcs12(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A key file as earlier versions wrote it."""
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(MIN_ITERATIONS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(PASSWORD.encode())
    )
    return pkcs12.serialize_key_and_certificates(b"P-001", key, None, None, encryption)


def time_guess(guess: Callable[[], object], runs: int) -> float:
    """The median time of ``runs`` wrong guesses, in ms; each must be refused."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        try:
            guess()
        except (ValueError, KeyUnavailable):
            pass
        else:
            raise SystemExit("a wrong guess was accepted")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="one guess per file, no figures")
    args = parser.parse_args()
    runs = 1 if args.smoke else args.runs

    with tempfile.TemporaryDirectory() as work:
        store = FileKeyStore(Path(work) / "keys", PASSWORD)
        store.ensure_key_pair("P-001")
        store.mfa_secret_box()
        pem = store.private_key_path("P-001").read_bytes()
        legacy = legacy_pkcs12(store.load_private_key("P-001"))
        cases = [
            (
                "P-NNN.private.pem, audit-signing.private.pem",
                "PKCS#8 PBES2, PBKDF2-HMAC-SHA256 x 600,000",
                lambda: decrypt_private_key(pem, GUESS),
            ),
            (
                MFA_SEAL_FILE,
                "PBKDF2-HMAC-SHA256 x 600,000, AES-GCM tag",
                lambda: FileKeyStore(store.directory, GUESS.decode()).mfa_secret_box(),
            ),
            (
                "*.private.p12 (earlier versions)",
                "PKCS#12 MAC, PKCS#12 KDF x 2,048",
                lambda: load_legacy_private_key(legacy, GUESS),
            ),
        ]
        rows = [(name, check, time_guess(guess, runs)) for name, check, guess in cases]

    if args.smoke:
        print(f"key files: smoke run, {len(rows)} kinds of file refused a wrong guess")
        return
    print("| file | cheapest check of a guess | ms per guess (median) |")
    print("|---|---|---|")
    for name, check, milliseconds in rows:
        print(f"| {name} | {check} | {milliseconds:,.1f} |")


if __name__ == "__main__":
    main()
