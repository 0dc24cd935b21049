"""Download tokens: 256 random bits, shown once, stored only as SHA-256, bound to one key."""

import hashlib
import hmac
from datetime import datetime

TOKEN_BYTES = 32


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(presented: str, stored_hash: str | None) -> bool:
    return stored_hash is not None and hmac.compare_digest(hash_token(presented), stored_hash)


def token_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or now >= expires_at
