"""AES-256-GCM sealing of small secrets (TOTP seeds) under a key held in the key store."""

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ssbg.domain.errors import IntegrityFailure

KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT_VERSION = b"\x01"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("SecretBox needs a 256-bit key")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """``version ‖ nonce ‖ ciphertext+tag``; ``associated_data`` binds the owner (a key id)."""
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_VERSION + nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def open(self, sealed: bytes, associated_data: bytes) -> bytes:
        if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != FORMAT_VERSION:
            raise IntegrityFailure()
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, associated_data)
        except (InvalidTag, ValueError):
            raise IntegrityFailure() from None
