"""The destruction-certificate test vector, checked by an independent implementation of
docs/key-lifecycle.md (standard library and ``cryptography`` only, none of the gateway's code)."""

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

VECTOR = Path(__file__).parents[2] / "fixtures" / "destruction_certificate_v1"


def verify(certificate: dict[str, Any], public_pem: bytes) -> bool:
    key = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if certificate.get("type") != "ssbg-key-destruction/v1":
        return False
    if certificate.get("signing_key_id") != hashlib.sha256(der).hexdigest():
        return False
    signed = {name: value for name, value in certificate.items() if name != "signature"}
    message = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        key.verify(
            base64.b64decode(certificate["signature"]),
            message.encode("utf-8"),
            ec.ECDSA(hashes.SHA384()),
        )
    except InvalidSignature:
        return False
    return True


def load() -> tuple[dict[str, Any], bytes]:
    return (
        json.loads((VECTOR / "certificate.json").read_text()),
        (VECTOR / "audit-signing.public.pem").read_bytes(),
    )


def test_the_vector_verifies() -> None:
    certificate, public = load()
    assert verify(certificate, public)
    assert len(certificate["backups"]) == 2


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c.update(reason="routine"),
        lambda c: c["backups"].pop(),
        lambda c: c.update(audit_sequence=4243),
        lambda c: c.update(destroyed_at="2026-12-07T12:00:00.000000Z"),
        lambda c: c.update(key_version="P-002"),
    ],
)
def test_any_edit_breaks_the_signature(edit: Any) -> None:
    certificate, public = load()
    edit(certificate)
    assert not verify(certificate, public)


def test_the_gateway_agrees_with_the_independent_check() -> None:
    from ssbg.infrastructure.crypto.audit_signing import public_key_from_pem
    from ssbg.infrastructure.crypto.certificates import verify_certificate

    certificate, public = load()
    assert verify_certificate(certificate, public_key_from_pem(public.decode())).valid
    certificate["reason"] = "routine"
    assert not verify_certificate(certificate, public_key_from_pem(public.decode())).valid
