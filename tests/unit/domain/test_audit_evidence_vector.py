"""The committed test vector (tests/fixtures/audit-bundle-v1.jsonl) checks out.

``test_vector_verifies_with_an_independent_implementation`` is the recipe of
docs/audit-evidence.md written out with the standard library and ``cryptography`` only —
nothing from ``ssbg`` — so the document, the vector and the gateway are held to each other.
"""

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.services.audit_validation_service import verify_bundle

VECTOR = Path(__file__).parents[2] / "fixtures" / "audit-bundle-v1.jsonl"
HASHED = (
    "event_id",
    "sequence_number",
    "occurred_at",
    "actor_id",
    "actor_role",
    "action",
    "resource",
    "result",
    "details",
    "source_ip",
    "request_id",
    "incident_level",
)


def records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in VECTOR.read_text(encoding="utf-8").splitlines()]


def signed_bytes(checkpoint: dict[str, Any]) -> bytes:
    return (
        "SSBG-AUDIT-CHECKPOINT-V1\n"
        f"sequence_number={checkpoint['sequence_number']}\n"
        f"entry_hash={checkpoint['entry_hash']}\n"
        f"created_at={checkpoint['created_at']}\n"
        f"checkpoint_interval={checkpoint['checkpoint_interval']}\n"
        f"previous_checkpoint_sequence={checkpoint['previous_checkpoint_sequence']}\n"
    ).encode("ascii")


def test_vector_verifies_with_an_independent_implementation() -> None:
    header, *body, end = records()
    entries = [r for r in body if r["type"] == "entry"]
    checkpoints = [r for r in body if r["type"] == "checkpoint"]
    assert (header["format"], header["version"]) == ("SSBG-AUDIT-BUNDLE", 1)
    assert header["anchor_hash"] == hashlib.sha512(b"SSBG-GENESIS").hexdigest()
    assert end == {"type": "end", "entries": len(entries), "checkpoints": len(checkpoints)}

    hashes_by_sequence = {}
    prev = header["anchor_hash"]
    for expected_sequence, entry in enumerate(entries, start=header["range"]["from_sequence"]):
        assert entry["sequence_number"] == expected_sequence
        assert entry["prev_hash"] == prev
        canonical = json.dumps(
            {name: entry[name] for name in HASHED},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        assert hashlib.sha512(prev.encode("ascii") + canonical).hexdigest() == entry["entry_hash"]
        prev = hashes_by_sequence[expected_sequence] = entry["entry_hash"]
    assert (header["chain_head"]["sequence"], header["chain_head"]["hash"]) == (
        entries[-1]["sequence_number"],
        prev,
    )

    key = serialization.load_pem_public_key(header["signing_key"]["public_key_pem"].encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP384R1)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert hashlib.sha256(der).hexdigest() == header["signing_key"]["key_id"]
    previous = 0
    for checkpoint in checkpoints:
        assert checkpoint["signing_key_id"] == header["signing_key"]["key_id"]
        assert checkpoint["previous_checkpoint_sequence"] == previous
        assert checkpoint["entry_hash"] == hashes_by_sequence[checkpoint["sequence_number"]]
        key.verify(
            base64.b64decode(checkpoint["signature"]),
            signed_bytes(checkpoint),
            ec.ECDSA(hashes.SHA384()),
        )
        previous = checkpoint["sequence_number"]


def test_vector_verifies_with_the_gateway_verifier() -> None:
    result = verify_bundle(VECTOR)

    assert result.as_dict() == {
        "valid": True,
        "entries_checked": 7,
        "first_invalid_sequence": None,
        "reason": None,
        "head": {"sequence": 7, "hash": records()[0]["chain_head"]["hash"]},
        "checkpoints_verified": 2,
        "anchor": None,  # a database validation's
    }


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_checkpoint_signature_verifies_with_openssl(tmp_path: Path) -> None:
    header, checkpoint = records()[0], next(r for r in records() if r["type"] == "checkpoint")
    (tmp_path / "key.pem").write_text(header["signing_key"]["public_key_pem"])
    (tmp_path / "signed.bin").write_bytes(signed_bytes(checkpoint))
    (tmp_path / "signature.der").write_bytes(base64.b64decode(checkpoint["signature"]))

    verified = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha384",
            "-verify",
            "key.pem",
            "-signature",
            "signature.der",
            "signed.bin",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == "Verified OK"
