"""The throttle's window arithmetic and Retry-After, on hand-made buckets."""

from datetime import UTC, datetime, timedelta

import pytest

from ssbg.domain.auth_throttle import (
    FailureBucket,
    bucket_of,
    first_bucket,
    throttle_state,
    throttle_window_start,
)

NOON = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def minute(offset: int) -> datetime:
    return NOON + timedelta(minutes=offset)


def test_a_moment_belongs_to_its_minute() -> None:
    assert bucket_of(NOON + timedelta(seconds=59, microseconds=999_999)) == NOON


def test_a_failure_counts_for_its_minute_and_the_five_after_it() -> None:
    now = NOON + timedelta(minutes=5, seconds=59)
    assert first_bucket(now) == NOON
    assert first_bucket(now + timedelta(seconds=1)) == minute(1)


@pytest.mark.parametrize(
    ("moment", "window"),
    [
        (NOON, NOON),
        (NOON + timedelta(minutes=4, seconds=59), NOON),
        (NOON + timedelta(minutes=5), minute(5)),
        (NOON + timedelta(minutes=7, seconds=30), minute(5)),
    ],
)
def test_throttle_windows_are_aligned_five_minute_spans(moment: datetime, window: datetime) -> None:
    assert throttle_window_start(moment) == window


def test_limit_failures_do_not_throttle() -> None:
    state = throttle_state([FailureBucket(NOON, 3)], NOON, limit=3)
    assert not state.throttled
    assert state.failures == 3
    assert state.retry_after_seconds == 0


def test_one_failure_over_the_limit_throttles_until_its_bucket_leaves() -> None:
    now = NOON + timedelta(seconds=20)
    state = throttle_state([FailureBucket(NOON, 4)], now, limit=3)
    assert state.throttled
    assert state.failures == 4
    # The 12:00 bucket counts until 12:06:00.
    assert state.retry_after_seconds == 6 * 60 - 20


def test_retry_after_waits_only_for_the_buckets_that_must_leave() -> None:
    buckets = [
        FailureBucket(minute(0), 2),
        FailureBucket(minute(2), 1),
        FailureBucket(minute(3), 3),
    ]
    now = minute(4)
    # 6 failures, limit 4: once 12:00 (2) leaves at 12:06, 4 remain — not over the limit.
    assert throttle_state(buckets, now, limit=4).retry_after_seconds == 120
    # limit 3: 12:02 must leave too, at 12:08.
    assert throttle_state(buckets, now, limit=3).retry_after_seconds == 240


def test_buckets_that_left_the_window_do_not_count() -> None:
    buckets = [FailureBucket(minute(0), 50), FailureBucket(minute(6), 1)]
    state = throttle_state(buckets, minute(6), limit=3)
    assert not state.throttled
    assert state.failures == 1


def test_retry_after_is_at_least_one_second() -> None:
    now = minute(6) - timedelta(microseconds=1)
    state = throttle_state([FailureBucket(NOON, 9)], now, limit=3)
    assert state.retry_after_seconds == 1


def test_bucket_order_does_not_matter() -> None:
    buckets = [FailureBucket(minute(3), 3), FailureBucket(minute(0), 2)]
    assert throttle_state(buckets, minute(4), limit=4) == throttle_state(
        list(reversed(buckets)), minute(4), limit=4
    )
