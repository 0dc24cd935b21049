"""Auth-failure throttling (SPEC §13.2) as arithmetic over per-minute counts.

Failed authentications are counted per source address in one-minute buckets. A failure
counts for the rest of its minute and the five whole minutes after it (5 to 6 minutes): any
``limit + 1`` failures within 5 minutes are always seen together, whatever the phase of the
clock. An address is throttled while its buckets in that window hold more than ``limit``
failures; a throttled request is not counted, so the throttle lapses once enough old buckets
have left the window, and ``retry_after_seconds`` says when.

The single ``AUTH_THROTTLED`` entry per address is per aligned 5-minute window
(``throttle_window_start``), so every replica agrees on which window a moment belongs to.
Nothing here reads a clock or a database.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

BUCKET = timedelta(minutes=1)
WINDOW = timedelta(minutes=5)
WINDOW_SECONDS = int(WINDOW.total_seconds())
# Rows older than this are of no use to any decision (the oldest bucket that still counts is
# WINDOW + BUCKET old); kept a little longer so a replica with a skewed clock still finds them.
RETENTION = timedelta(minutes=10)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_of(moment: datetime) -> datetime:
    """The minute ``moment`` falls in (its failures' bucket)."""
    return moment.replace(second=0, microsecond=0)


def first_bucket(now: datetime) -> datetime:
    """The oldest bucket whose failures still count at ``now``."""
    return bucket_of(now) - WINDOW


def throttle_window_start(now: datetime) -> datetime:
    """The aligned 5-minute window ``now`` falls in: one ``AUTH_THROTTLED`` entry each."""
    elapsed = (now - _EPOCH) // WINDOW
    return _EPOCH + elapsed * WINDOW


@dataclass(frozen=True, slots=True)
class FailureBucket:
    minute: datetime
    failures: int


@dataclass(frozen=True, slots=True)
class RecentFailures:
    """An address's buckets in the window, and whether its ``AUTH_THROTTLED`` entry of the
    current throttle window is written already."""

    buckets: list[FailureBucket]
    window_recorded: bool


@dataclass(frozen=True, slots=True)
class ThrottleState:
    """An address's failures in the window at ``now``, and what follows for its next failure."""

    failures: int
    throttled: bool
    retry_after_seconds: int


def throttle_state(buckets: Sequence[FailureBucket], now: datetime, limit: int) -> ThrottleState:
    """Whether failures in ``buckets`` (the address's, any order) throttle it at ``now``.

    ``retry_after_seconds``: when throttled, the whole seconds (at least 1) until enough of the
    oldest buckets have left the window for the next failure to be counted again; else 0.
    """
    counting = sorted(
        (bucket for bucket in buckets if bucket.minute >= first_bucket(now)),
        key=lambda bucket: bucket.minute,
    )
    failures = sum(bucket.failures for bucket in counting)
    if failures <= limit:
        return ThrottleState(failures, throttled=False, retry_after_seconds=0)
    remaining = failures
    lapses_at = now
    for bucket in counting:
        remaining -= bucket.failures
        lapses_at = bucket.minute + WINDOW + BUCKET
        if remaining <= limit:
            break
    seconds = max(1, math.ceil((lapses_at - now).total_seconds()))
    return ThrottleState(failures, throttled=True, retry_after_seconds=seconds)
