from datetime import UTC, datetime, timedelta

import pytest

from ssbg.domain.console_sessions import (
    SessionEnd,
    SessionTimes,
    is_session_secret,
    new_session_secret,
    session_end,
    touch_due,
)

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
IDLE = timedelta(minutes=15)


def _times(*, last_seen: timedelta = timedelta(), revoked: bool = False) -> SessionTimes:
    return SessionTimes(
        last_seen_at=START + last_seen,
        expires_at=START + timedelta(hours=8),
        revoked_at=START if revoked else None,
    )


@pytest.mark.parametrize(
    ("times", "after", "end"),
    [
        (_times(), timedelta(minutes=14, seconds=59), None),
        (_times(), timedelta(minutes=15), SessionEnd.IDLE),
        (_times(last_seen=timedelta(hours=7, minutes=50)), timedelta(hours=7, minutes=59), None),
        (_times(last_seen=timedelta(hours=7, minutes=59)), timedelta(hours=8), SessionEnd.EXPIRED),
        (_times(revoked=True), timedelta(), SessionEnd.REVOKED),
    ],
)
def test_when_a_session_ends(times: SessionTimes, after: timedelta, end: SessionEnd | None) -> None:
    assert session_end(times, IDLE, START + after) is end


def test_last_seen_is_written_at_most_once_a_minute() -> None:
    assert not touch_due(START, START + timedelta(seconds=59))
    assert touch_due(START, START + timedelta(minutes=1))


def test_session_secrets_are_random_and_recognised() -> None:
    first, second = new_session_secret(), new_session_secret()

    assert first != second
    assert is_session_secret(first)
    assert not is_session_secret(None)
    assert not is_session_secret(first[:-1])
    assert not is_session_secret(first[:-1] + "=")
