"""Signing and verifying destruction certificates with the audit signing key (ECDSA P-384).

The format is :mod:`ssbg.domain.destruction_certificate`; verification needs nothing but the
certificate and a trusted public key (``ssbg keys verify-certificate``), and every failure is
one answer with a reason, never an exception.
"""

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.destruction_certificate import MalformedCertificate, check_shape, signing_input
from ssbg.infrastructure.crypto.audit_signing import CheckpointSigner
from ssbg.infrastructure.crypto.key_store import fingerprint_of

_ALGORITHM = ec.ECDSA(hashes.SHA384())


async def sign_certificate(signer: CheckpointSigner, unsigned: Mapping[str, Any]) -> dict[str, Any]:
    """``unsigned`` (every field but ``signing_key_id`` and ``signature``), signed."""
    info = await signer.key_info()
    certificate = {**unsigned, "signing_key_id": info.key_id}
    signature, _key_id = await signer.sign(signing_input(certificate))
    return {**certificate, "signature": signature}


@dataclass(frozen=True, slots=True)
class CertificateCheck:
    valid: bool
    reason: str | None  # MALFORMED, UNTRUSTED_KEY, BAD_SIGNATURE

    def as_dict(self, certificate: Any) -> dict[str, Any]:
        body = certificate if isinstance(certificate, dict) else {}
        return {
            "valid": self.valid,
            "reason": self.reason,
            "key_version": body.get("key_version"),
            "destroyed_at": body.get("destroyed_at"),
            "backups": len(body["backups"]) if isinstance(body.get("backups"), list) else None,
            "signing_key_id": body.get("signing_key_id"),
        }


def verify_certificate(certificate: Any, trusted: ec.EllipticCurvePublicKey) -> CertificateCheck:
    try:
        check_shape(certificate)
    except MalformedCertificate:
        return CertificateCheck(False, "MALFORMED")
    if certificate["signing_key_id"] != fingerprint_of(trusted):
        return CertificateCheck(False, "UNTRUSTED_KEY")
    try:
        signature = base64.b64decode(certificate["signature"], validate=True)
        trusted.verify(signature, signing_input(certificate), _ALGORITHM)
    except (InvalidSignature, ValueError, binascii.Error):
        return CertificateCheck(False, "BAD_SIGNATURE")
    return CertificateCheck(True, None)
