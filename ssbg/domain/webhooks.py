"""Webhook notifications (SPEC §13.2): the signature a receiver checks and the retry schedule.
A receiver authenticates a notification by recomputing ``X-SSBG-Signature`` — ``sha256=`` and
the hex HMAC-SHA256 of the exact body bytes under the shared secret — and comparing it in
constant time. A delivery that fails is tried again after a delay that doubles from
``FIRST_RETRY`` up to ``MAX_RETRY`` and then stays there: a notification is never given up.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.leases import ahead_of

SIGNATURE_HEADER = "X-SSBG-Signature"
EVENT_HEADER = "X-SSBG-Event"
DELIVERY_HEADER = "X-SSBG-Delivery"
SIGNATURE_PREFIX = "sha256="

FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY = timedelta(minutes=10)
# The longest a sender waits for one receiver (``SSBG_ALERT_WEBHOOK_TIMEOUT_SECONDS``' bound).
MAX_TIMEOUT_SECONDS = 60


@dataclass(frozen=True, slots=True)
class SetAhead:
    """Outbox times only a clock ahead of ours can have written — ours went back since
    (:mod:`ssbg.domain.leases`): a retry time further ahead than the longest backoff, a claim
    ending further ahead than the longest lease any sender takes. A row with one is due, or
    unclaimed, now: otherwise a notification would wait for the length of the jump.

    ``retry_after``: now + ``MAX_RETRY`` (+ the skew tolerance); ``claim_after``: now + the
    longest lease (+ the tolerance).
    """

    retry_after: datetime
    claim_after: datetime

    @classmethod
    def at(cls, now: datetime, longest_lease: timedelta) -> "SetAhead":
        return cls(retry_after=ahead_of(now) + MAX_RETRY, claim_after=ahead_of(now) + longest_lease)


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-SSBG-Signature`` value of ``body``."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_matches(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    if header is None:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.encode())


def retry_delay(attempts: int) -> timedelta:
    """How long to wait before the next try of a notification already tried ``attempts``
    times (at least once): 5 s, 10 s, 20 s, … capped at 10 minutes."""
    if attempts < 1:
        raise ValueError("a retry follows at least one attempt")
    # Doubling past the cap would only grow the number; stop at 2**16.
    delay = FIRST_RETRY * (1 << min(attempts - 1, 16))
    return min(delay, MAX_RETRY)


def outbox_seal_message(event: str, body: str, created_at: datetime) -> bytes:
    """The bytes an outbox row's seal covers: what is sent, and when it was queued."""
    return json.dumps(
        ["notification_outbox", event, body, format_timestamp(created_at)],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
