"""The committed test vectors (tests/fixtures/audit-bundle-v2.jsonl, and the version 1 one
written before signed heads) check out.

``verify_independently`` is the recipe of docs/audit-evidence.md written out with the standard
library and ``cryptography`` only — nothing from ``ssbg`` — so the document, the vectors and the
gateway are held to each other: it accepts the vectors, and rejects the same tampered copies the
gateway's verifier rejects.
"""

import base64
import copy
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.services.audit_bundle_verification import verify_bundle

FIXTURES = Path(__file__).parents[2] / "fixtures"
VECTOR = FIXTURES / "audit-bundle-v2.jsonl"
VECTOR_V1 = FIXTURES / "audit-bundle-v1.jsonl"
GENESIS = hashlib.sha512(b"SSBG-GENESIS").hexdigest()
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
ECDSA = ec.ECDSA(hashes.SHA384())


def records(path: Path = VECTOR) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def lines(*pairs: tuple[str, object]) -> bytes:
    return "".join(f"{name}={value}\n" for name, value in pairs).encode("ascii")


def checkpoint_bytes(checkpoint: dict[str, Any]) -> bytes:
    names = ("sequence_number", "entry_hash", "created_at", "checkpoint_interval")
    return b"SSBG-AUDIT-CHECKPOINT-V1\n" + lines(
        *((name, checkpoint[name]) for name in names),
        ("previous_checkpoint_sequence", checkpoint["previous_checkpoint_sequence"]),
    )


def head_bytes(header: dict[str, Any], head: dict[str, Any]) -> bytes:
    anchor = header["audit_anchor"] or {"sequence": 0, "hash": "", "anchored_at": ""}
    return b"SSBG-AUDIT-BUNDLE-HEAD-V1\n" + lines(
        ("sequence_number", head["sequence_number"]),
        ("entry_hash", head["entry_hash"]),
        ("from_sequence", header["range"]["from_sequence"]),
        ("to_sequence", header["range"]["to_sequence"]),
        ("anchor_hash", header["anchor_hash"] or ""),
        ("chain_head_sequence", header["chain_head"]["sequence"]),
        ("chain_head_hash", header["chain_head"]["hash"]),
        ("audit_anchor_sequence", anchor["sequence"]),
        ("audit_anchor_hash", anchor["hash"]),
        ("audit_anchor_time", anchor["anchored_at"]),
        ("exported_at", header["exported_at"]),
    )


def verify_independently(bundle: list[dict[str, Any]], pinned_pem: str | None = None) -> None:
    """Raise (AssertionError, InvalidSignature) unless ``bundle`` is valid by the document."""
    header, *body, end = bundle
    entries = [r for r in body if r["type"] == "entry"]
    checkpoints = [r for r in body if r["type"] == "checkpoint"]
    heads = [r for r in body if r["type"] == "signed_head"]
    assert (header["format"], header["version"]) == ("SSBG-AUDIT-BUNDLE", 2)
    assert end == {"type": "end", "entries": len(entries), "checkpoints": len(checkpoints)}
    key = serialization.load_pem_public_key(
        (pinned_pem or header["signing_key"]["public_key_pem"]).encode()
    )
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP384R1)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_id = hashlib.sha256(der).hexdigest()

    # 1-3: the chain.
    hashes_by_sequence = {}
    prev = header["anchor_hash"]
    for expected, entry in enumerate(entries, start=header["range"]["from_sequence"]):
        assert entry["sequence_number"] == expected
        assert entry["prev_hash"] == prev
        canonical = json.dumps(
            {name: entry[name] for name in HASHED},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        assert hashlib.sha512(prev.encode("ascii") + canonical).hexdigest() == entry["entry_hash"]
        prev = hashes_by_sequence[expected] = entry["entry_hash"]
    last = header["range"]["from_sequence"] - 1 + len(entries)
    # 4-7: the checkpoints, by the intervals they signed.
    previous, interval = 0, None
    for checkpoint in checkpoints:
        assert checkpoint["signing_key_id"] == key_id
        key.verify(base64.b64decode(checkpoint["signature"]), checkpoint_bytes(checkpoint), ECDSA)
        assert checkpoint["previous_checkpoint_sequence"] == previous
        assert checkpoint["entry_hash"] == hashes_by_sequence[checkpoint["sequence_number"]]
        previous, interval = checkpoint["sequence_number"], checkpoint["checkpoint_interval"]
    # 8-9: the end of the range, the head, and no checkpoint missing where one was due.
    assert last == header["range"]["to_sequence"]
    if last >= header["chain_head"]["sequence"]:
        assert (last, prev) == (header["chain_head"]["sequence"], header["chain_head"]["hash"])
        if interval is not None:
            assert (previous // interval + 1) * interval > last
    # 10: the signed head covers every entry, and the header.
    assert len(heads) == 1
    head = heads[0]
    assert (head["sequence_number"], head["entry_hash"], head["signing_key_id"]) == (
        last,
        prev,
        key_id,
    )
    key.verify(base64.b64decode(head["signature"]), head_bytes(header, head), ECDSA)
    # 11: the chain reaches the gateway's audit anchor.
    anchor = header["audit_anchor"]
    if anchor is not None:
        if anchor["sequence"] in hashes_by_sequence:
            assert hashes_by_sequence[anchor["sequence"]] == anchor["hash"]
        elif last >= header["chain_head"]["sequence"]:
            assert anchor["sequence"] <= last


def test_vector_verifies_with_an_independent_implementation() -> None:
    bundle = records()
    header = bundle[0]
    assert header["anchor_hash"] == GENESIS
    assert header["audit_anchor"]["sequence"] == header["chain_head"]["sequence"]

    verify_independently(bundle)
    verify_independently(bundle, pinned_pem=header["signing_key"]["public_key_pem"])


def test_vector_verifies_with_the_gateway_verifier() -> None:
    header = records()[0]

    assert verify_bundle(VECTOR).as_dict() == {
        "valid": True,
        "entries_checked": 7,
        "first_invalid_sequence": None,
        "reason": None,
        "head": {"sequence": 7, "hash": header["chain_head"]["hash"]},
        "checkpoints_verified": 2,
        "anchor": header["audit_anchor"],
        "bundle_version": 2,
        "key_source": "bundle",
        "signed_head": True,
        "warnings": ["KEY_NOT_PINNED"],
        "certificates_verified": 0,
    }


def _tampered(change: Any) -> list[dict[str, Any]]:
    bundle = copy.deepcopy(records())
    change(bundle)
    return bundle


def _without(kind: str) -> Any:
    def remove(bundle: list[dict[str, Any]]) -> None:
        bundle[:] = [r for r in bundle if r["type"] != kind]
        bundle[-1]["checkpoints"] = sum(r["type"] == "checkpoint" for r in bundle)

    return remove


def _write(bundle: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in bundle))
    return path


# The signed head binds the header: none of its claims can change unnoticed, nor can it go.
TAMPERED = {
    "export time": lambda b: b[0].update(exported_at="2026-11-27T09:38:04.000000Z"),
    "audit anchor": lambda b: b[0]["audit_anchor"].update(sequence=6, hash=b[6]["entry_hash"]),
    "no audit anchor": lambda b: b[0].update(audit_anchor=None),
    "chain head": lambda b: b[0]["chain_head"].update(sequence=8),
    "signed head removed": _without("signed_head"),
}


@pytest.mark.parametrize("change", TAMPERED.values(), ids=TAMPERED.keys())
def test_both_verifiers_reject_a_tampered_header_or_head(change: Any, tmp_path: Path) -> None:
    bundle = _tampered(change)

    with pytest.raises((AssertionError, InvalidSignature)):
        verify_independently(bundle)
    assert not verify_bundle(_write(bundle, tmp_path / "tampered.jsonl")).valid


def test_without_its_checkpoints_the_signed_head_still_covers_every_entry(
    tmp_path: Path,
) -> None:
    bundle = _tampered(_without("checkpoint"))

    verify_independently(bundle)
    assert verify_bundle(_write(bundle, tmp_path / "no-checkpoints.jsonl")).valid


# -- version 1: still read, reported as weaker -------------------------------------------------


def test_version_1_vector_verifies_without_a_pinned_key_with_its_warnings() -> None:
    header = records(VECTOR_V1)[0]

    assert verify_bundle(VECTOR_V1).as_dict() == {
        "valid": True,
        "entries_checked": 7,
        "first_invalid_sequence": None,
        "reason": None,
        "head": {"sequence": 7, "hash": header["chain_head"]["hash"]},
        "checkpoints_verified": 2,
        "anchor": None,
        "bundle_version": 1,
        "key_source": "bundle",
        "signed_head": False,
        "warnings": ["KEY_NOT_PINNED", "VERSION_1"],
        "certificates_verified": 0,
    }


def test_version_1_vector_fails_under_a_pinned_key_where_no_checkpoint_covers_it() -> None:
    """Its last entry (its own export) comes after its last checkpoint (6): signed by nothing."""
    header = records(VECTOR_V1)[0]

    result = verify_bundle(VECTOR_V1, [header["signing_key"]["public_key_pem"]]).as_dict()

    assert (result["valid"], result["first_invalid_sequence"], result["reason"]) == (
        False,
        7,
        "UNCOVERED_ENTRIES",
    )
    assert (result["key_source"], result["warnings"]) == ("pinned", ["VERSION_1"])


def test_version_1_vector_chain_and_checkpoints_verify_independently() -> None:
    header, *body, _end = records(VECTOR_V1)
    key = serialization.load_pem_public_key(header["signing_key"]["public_key_pem"].encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    prev = header["anchor_hash"]
    hashes_by_sequence = {}
    for entry in (r for r in body if r["type"] == "entry"):
        canonical = json.dumps(
            {name: entry[name] for name in HASHED},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        assert entry["prev_hash"] == prev
        assert hashlib.sha512(prev.encode("ascii") + canonical).hexdigest() == entry["entry_hash"]
        prev = hashes_by_sequence[entry["sequence_number"]] = entry["entry_hash"]
    for checkpoint in (r for r in body if r["type"] == "checkpoint"):
        assert checkpoint["entry_hash"] == hashes_by_sequence[checkpoint["sequence_number"]]
        key.verify(base64.b64decode(checkpoint["signature"]), checkpoint_bytes(checkpoint), ECDSA)


# -- OpenSSL agrees ------------------------------------------------------------------------------


def _openssl_verifies(tmp_path: Path, public_pem: str, signed: bytes, signature: str) -> None:
    (tmp_path / "key.pem").write_text(public_pem)
    (tmp_path / "signed.bin").write_bytes(signed)
    (tmp_path / "signature.der").write_bytes(base64.b64decode(signature))
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


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_checkpoint_and_signed_head_signatures_verify_with_openssl(tmp_path: Path) -> None:
    bundle = records()
    header = bundle[0]
    checkpoint = next(r for r in bundle if r["type"] == "checkpoint")
    head = next(r for r in bundle if r["type"] == "signed_head")
    pem = header["signing_key"]["public_key_pem"]

    _openssl_verifies(tmp_path, pem, checkpoint_bytes(checkpoint), checkpoint["signature"])
    _openssl_verifies(tmp_path, pem, head_bytes(header, head), head["signature"])
