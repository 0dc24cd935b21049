"""TOTP verification rules (RFC 6238, 30-second steps, ±1 step tolerance, single use).

A code is accepted only for a time step later than the last step accepted for the same key,
so neither the same code nor an older one can be replayed. ``now`` is always a parameter.
"""

import hmac
from datetime import datetime

import pyotp

STEP_SECONDS = 30
TOLERANCE_STEPS = 1
CODE_DIGITS = 6
ISSUER = "SSBG"


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def match_totp_step(
    secret: str, code: str, now: datetime, last_used_step: int | None
) -> int | None:
    """Return the time step ``code`` belongs to, or ``None`` if it is wrong or already used."""
    # ASCII digits only: ``str.isdigit`` also accepts "¹²³" (a Latin-1 header value), which
    # ``hmac.compare_digest`` then refuses with a TypeError instead of a mismatch.
    if len(code) != CODE_DIGITS or not (code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret, digits=CODE_DIGITS, interval=STEP_SECONDS)
    current = time_step(now)
    matched: int | None = None
    for step in range(current - TOLERANCE_STEPS, current + TOLERANCE_STEPS + 1):
        # Check every candidate step so the time taken does not depend on which one matched.
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            matched = step
    if matched is None or (last_used_step is not None and matched <= last_used_step):
        return None
    return matched


def provisioning_uri(secret: str, key_id: str) -> str:
    return pyotp.TOTP(secret, digits=CODE_DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=key_id, issuer_name=ISSUER
    )
