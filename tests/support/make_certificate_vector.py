"""Write the destruction-certificate test vector:
``python -m tests.support.make_certificate_vector tests/fixtures/destruction_certificate_v1``.

A throwaway audit signing key signs a fixed certificate; the public key is published beside it
and the private key discarded. ECDSA signatures are randomised, so each run writes another
(equally valid) signature; everything else is fixed.
"""

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from ssbg.domain.destruction_certificate import CERTIFICATE_TYPE
from ssbg.infrastructure.crypto.audit_signing import CheckpointSigner
from ssbg.infrastructure.crypto.certificates import sign_certificate
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore

UNSIGNED = {
    "type": CERTIFICATE_TYPE,
    "key_version": "P-001",
    "public_key_sha256": "6f0b3d0c9a7e5f1d2c4b8a6e0f9d3c7b5a1e8d2f4c6b0a9e7d5c3b1a2f4e6d8c",
    "destroyed_at": "2026-12-06T12:00:00.000000Z",
    "reason": "end of retention for the 2025 archive (ticket OPS-1234)",
    "actor_id": "6002bdfd-3c52-4d69-8281-76ea7757190d",
    "backups": [
        {"backup_id": "0b5e5a1e-5eed-4c0d-9a7e-000000000001", "ciphertext_sha512": "a" * 128},
        {"backup_id": "0b5e5a1e-5eed-4c0d-9a7e-000000000002", "ciphertext_sha512": "b" * 128},
    ],
    "audit_sequence": 4242,
    "audit_entry_hash": "c" * 128,
}


async def signed(keys: Path) -> tuple[dict[str, object], bytes]:
    store = FileKeyStore(keys, "vector-password-not-secret")
    store.ensure_audit_signing_key()
    certificate = await sign_certificate(CheckpointSigner(store), UNSIGNED)
    return certificate, store.public_key_path(AUDIT_SIGNING_NAME).read_bytes()


def write(directory: Path) -> None:
    with tempfile.TemporaryDirectory() as keys:
        certificate, public = asyncio.run(signed(Path(keys)))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "certificate.json").write_text(json.dumps(certificate, indent=2) + "\n")
    (directory / "audit-signing.public.pem").write_bytes(public)


if __name__ == "__main__":
    write(Path(sys.argv[1]))
