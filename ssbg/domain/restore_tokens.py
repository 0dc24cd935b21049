"""Bearer secrets (API keys, download tokens): 256 random bits for a token, shown once.

The database keeps neither the secret nor a bare hash of it: only the keyed verifier of its
SHA-256 (:class:`ssbg.infrastructure.crypto.integrity.IntegrityKey`), which nobody can compute
without the key store — so a row written by a database user cannot hold a working secret.
"""

import hashlib
from datetime import datetime

TOKEN_BYTES = 32


def secret_digest(secret: str) -> str:
    """SHA-256 (hex) of a bearer secret: what the keyed verifier is computed over."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or now >= expires_at
