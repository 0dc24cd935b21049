"""Web console sessions (SPEC §13.5): when one ends, and the secrets that stand for it.

A session is begun with an API key and then stands for it, so it is a credential of its own:

* the browser holds a random session secret (``ssbg_session`` cookie); the database holds only
  the keyed verifier of its SHA-256, like an API key's (SPEC §13.7), so a reader of the
  database cannot use a session and a writer cannot mint one (the row is sealed too);
* it ends ``IDLE`` after ``idle`` without a request, ``EXPIRED`` at its absolute expiry, or
  ``REVOKED`` at sign-out — and with its API key: every request checks the key again;
* the CSRF token of its forms is derived from the session secret under the integrity key, so
  nothing about it is stored and it changes with every session.

``last_seen_at`` is written at most once per ``TOUCH_RESOLUTION``: the idle expiry is exact to
within that, and a page view is not a database write.
"""

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

SESSION_SECRET_BYTES = 32
SESSION_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
TOUCH_RESOLUTION = timedelta(minutes=1)


class SessionEnd(StrEnum):
    IDLE = "IDLE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


@dataclass(frozen=True, slots=True)
class SessionTimes:
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def new_session_secret() -> str:
    """256 random bits, URL-safe (43 characters): what the cookie holds."""
    return secrets.token_urlsafe(SESSION_SECRET_BYTES)


def is_session_secret(value: str | None) -> bool:
    return value is not None and SESSION_SECRET_PATTERN.fullmatch(value) is not None


def session_end(times: SessionTimes, idle: timedelta, now: datetime) -> SessionEnd | None:
    """Why the session is over at ``now`` (``None``: it is not)."""
    if times.revoked_at is not None:
        return SessionEnd.REVOKED
    if now >= times.expires_at:
        return SessionEnd.EXPIRED
    if now >= times.last_seen_at + idle:
        return SessionEnd.IDLE
    return None


def touch_due(last_seen_at: datetime, now: datetime) -> bool:
    return now - last_seen_at >= TOUCH_RESOLUTION
