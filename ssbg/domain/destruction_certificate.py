"""The key destruction certificate (SPEC §13.1): signed, offline-verifiable proof that a key
version was destroyed, with the backups it made unrecoverable.

``{"type": "ssbg-key-destruction/v1", "key_version", "public_key_sha256", "destroyed_at",
"reason", "actor_id", "backups": [{"backup_id", "ciphertext_sha512"}], "audit_sequence",
"audit_entry_hash", "signing_key_id", "signature"}``. ``signature`` is base64 of an ECDSA
P-384/SHA-384 signature (DER) by the audit signing key over the canonical JSON (sorted keys, no
whitespace, UTF-8) of every other field; ``signing_key_id`` is the SHA-256 (hex) of that key's
DER SubjectPublicKeyInfo. ``audit_sequence`` / ``audit_entry_hash`` name the ``KEY_DESTROY``
audit entry, so the certificate and the chain vouch for each other.

What it proves, given a trusted audit signing key: that the gateway destroyed its copy of the
private key of ``key_version`` (the key whose public half hashes to ``public_key_sha256``) at
``destroyed_at``, and which backups that left without a usable key. What it cannot prove: that
no other copy of the private key file exists (one taken before the destruction, a backup of
the key store) — keep the key store's backups under the same control as the key store.
"""

import re
from collections.abc import Mapping
from typing import Any

from ssbg.domain.audit_chain import canonical_json

CERTIFICATE_TYPE = "ssbg-key-destruction/v1"
SIGNED_FIELDS = (
    "type",
    "key_version",
    "public_key_sha256",
    "destroyed_at",
    "reason",
    "actor_id",
    "backups",
    "audit_sequence",
    "audit_entry_hash",
    "signing_key_id",
)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


class MalformedCertificate(ValueError):
    """Not a destruction certificate of this format."""


def signing_input(certificate: Mapping[str, Any]) -> bytes:
    """The bytes the signature covers: every field but ``signature``, canonically."""
    return canonical_json({name: certificate[name] for name in SIGNED_FIELDS})


def check_shape(certificate: Any) -> None:
    """Raise ``MalformedCertificate`` unless ``certificate`` has exactly this format's fields,
    with the right types (the signature is checked separately)."""
    if not isinstance(certificate, dict):
        raise MalformedCertificate("not a JSON object")
    if set(certificate) != {*SIGNED_FIELDS, "signature"}:
        raise MalformedCertificate("unexpected or missing fields")
    if certificate["type"] != CERTIFICATE_TYPE:
        raise MalformedCertificate("not an ssbg-key-destruction/v1 certificate")
    strings = ("key_version", "destroyed_at", "reason", "signing_key_id", "signature")
    if not all(isinstance(certificate[name], str) for name in strings):
        raise MalformedCertificate("a text field is not text")
    if not _HEX64.fullmatch(str(certificate["public_key_sha256"])):
        raise MalformedCertificate("public_key_sha256 is not 64 hex digits")
    if certificate["actor_id"] is not None and not isinstance(certificate["actor_id"], str):
        raise MalformedCertificate("actor_id is neither text nor null")
    sequence = certificate["audit_sequence"]
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise MalformedCertificate("audit_sequence is not a positive integer")
    if not _HEX128.fullmatch(str(certificate["audit_entry_hash"])):
        raise MalformedCertificate("audit_entry_hash is not 128 hex digits")
    backups = certificate["backups"]
    if not isinstance(backups, list) or not all(
        isinstance(backup, dict)
        and set(backup) == {"backup_id", "ciphertext_sha512"}
        and isinstance(backup["backup_id"], str)
        and (backup["ciphertext_sha512"] is None or isinstance(backup["ciphertext_sha512"], str))
        for backup in backups
    ):
        raise MalformedCertificate("backups is not a list of {backup_id, ciphertext_sha512}")
