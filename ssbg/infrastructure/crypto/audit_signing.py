"""ECDSA P-384 / SHA-384 signatures over audit checkpoints (format in ``domain.audit_checkpoint``).

The private key never leaves the key store; the gateway signs with it, and anyone verifies
with the public key (in the database, in every evidence bundle, and in the key store as
``audit-signing.public.pem``). A verification failure of any kind is one answer: ``False``.
"""

import asyncio
import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.audit_checkpoint import Checkpoint
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore, fingerprint_of

_ALGORITHM = ec.ECDSA(hashes.SHA384())


@dataclass(frozen=True, slots=True)
class SigningKeyInfo:
    key_id: str  # SHA-256 hex of the DER SubjectPublicKeyInfo
    public_key_pem: str


def public_key_from_pem(pem: str) -> ec.EllipticCurvePublicKey:
    """Parse a P-384 public key; ``ValueError`` for anything else."""
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError):
        raise ValueError("not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ValueError("not an EC P-384 public key")
    return key


def public_key_pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


class CheckpointSigner:
    """Signs with the key store's audit signing key, loaded once per process (slow KDF)."""

    def __init__(self, key_store: FileKeyStore) -> None:
        self._key_store = key_store
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._info: SigningKeyInfo | None = None

    async def _load(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            # Raises KeyUnavailable: no checkpoint, no entry (fail closed).
            key = await asyncio.to_thread(self._key_store.load_private_key, AUDIT_SIGNING_NAME)
            self._info = SigningKeyInfo(
                key_id=fingerprint_of(key.public_key()),
                public_key_pem=public_key_pem(key.public_key()),
            )
            self._key = key
        return self._key

    async def key_info(self) -> SigningKeyInfo:
        await self._load()
        assert self._info is not None
        return self._info

    async def sign(self, message: bytes) -> tuple[str, str]:
        """``(signature as base64 DER, key id)``."""
        key = await self._load()
        assert self._info is not None
        signature = key.sign(message, _ALGORITHM)
        return base64.b64encode(signature).decode("ascii"), self._info.key_id


class CheckpointSignatureCheck:
    """``checkpoint -> bool``: signed by one of the trusted keys, over its own statement; and
    the same check for the other signed statements (:meth:`verifies`)."""

    def __init__(self, trusted: Mapping[str, ec.EllipticCurvePublicKey]) -> None:
        self._trusted = dict(trusted)

    @classmethod
    def of_pems(cls, pems: list[str]) -> "CheckpointSignatureCheck":
        keys = [public_key_from_pem(pem) for pem in pems]
        return cls({fingerprint_of(key): key for key in keys})

    def __call__(self, checkpoint: Checkpoint) -> bool:
        try:
            message = checkpoint.signing_input()
        except ValueError:
            return False
        return self.verifies(checkpoint.signing_key_id, message, checkpoint.signature)

    def verifies(self, key_id: str, message: bytes, signature: str) -> bool:
        """Any signed statement (a checkpoint, the audit anchor, a bundle's signed head):
        ``signature`` (base64 DER) over ``message`` by the trusted key ``key_id``."""
        key = self._trusted.get(key_id)
        if key is None:
            return False
        try:
            key.verify(base64.b64decode(signature, validate=True), message, _ALGORITHM)
        except (InvalidSignature, ValueError, binascii.Error):
            return False
        return True
