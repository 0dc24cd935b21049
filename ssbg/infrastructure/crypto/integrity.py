"""HMAC-SHA256 under the key store's integrity key: keyed verifiers and row seals.

The database stores nothing a writer of it could compute: an API key or download token is
stored as ``verifier(SHA-256 of it)``, a row that grants or restricts something carries
``seal(message)`` (:mod:`ssbg.domain.row_seals` builds the message). Both are HMAC-SHA256 under
one 256-bit key that lives only in the key store (sealed there like ``mfa-seal.key``), with a
label per use so a verifier can never stand in for a seal. The key is loaded on first use:
until the key store answers, nothing can be verified (``KeyUnavailable``: fail closed).
"""

import hashlib
import hmac
from collections.abc import Callable

from ssbg.domain.errors import KeyUnavailable

_VERIFIER_LABEL = b"ssbg-verifier/v1\x00"
_SEAL_LABEL = b"ssbg-row-seal/v1\x00"
_FORM_TOKEN_LABEL = b"ssbg-form-token/v1\x00"


class IntegrityKey:
    def __init__(self, load_key: Callable[[], bytes]) -> None:
        self._load_key = load_key
        self._key: bytes | None = None

    @classmethod
    def unavailable(cls, reason: str) -> "IntegrityKey":
        """For a process that must never touch a sealed row (it fails closed if it does)."""

        def refuse() -> bytes:
            raise KeyUnavailable(reason)

        return cls(refuse)

    def _mac(self, label: bytes, message: bytes) -> str:
        if self._key is None:
            key = self._load_key()
            if len(key) != 32:
                raise ValueError("the integrity key must be 256 bits")
            self._key = key
        return hmac.new(self._key, label + message, hashlib.sha256).hexdigest()

    def verifier(self, digest: str) -> str:
        """The stored form of a secret whose SHA-256 (hex) is ``digest``."""
        return self._mac(_VERIFIER_LABEL, digest.encode("ascii"))

    def verifier_matches(self, digest: str, stored: str | None) -> bool:
        return stored is not None and hmac.compare_digest(self.verifier(digest), stored)

    def form_token(self, purpose: str, digest: str) -> str:
        """The CSRF token of a browser secret whose SHA-256 (hex) is ``digest`` (the web
        console's session or sign-in cookie), for forms of ``purpose``: derived, never stored."""
        return self._mac(_FORM_TOKEN_LABEL, f"{purpose}\x00{digest}".encode("ascii"))

    def form_token_matches(self, purpose: str, digest: str, presented: str | None) -> bool:
        if not presented or not presented.isascii():
            return False
        return hmac.compare_digest(self.form_token(purpose, digest), presented)

    def seal(self, message: bytes) -> str:
        return self._mac(_SEAL_LABEL, message)

    def seal_matches(self, message: bytes, stored: str | None) -> bool:
        return stored is not None and hmac.compare_digest(self.seal(message), stored)
