"""Deadlines on a clock that can jump back: a lease renewed ahead of now counts again from now
with its own length; an alert triggered ahead of now is overdue (ordinary skew is neither)."""

from datetime import UTC, datetime, timedelta

from ssbg.domain.alerts import AlertStatus, Overdue, effective_alert_status
from ssbg.domain.leases import SKEW_TOLERANCE, ahead_of, restarted_lease

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DELAY = timedelta(minutes=15)


def test_a_lease_renewed_ahead_of_now_keeps_its_own_length_counted_from_now() -> None:
    renewed = NOW + timedelta(days=1)
    assert restarted_lease(renewed, renewed + timedelta(seconds=60), NOW) == NOW + timedelta(
        seconds=60
    )
    assert ahead_of(NOW) == NOW + SKEW_TOLERANCE


def test_an_alert_triggered_ahead_of_now_is_overdue_but_ordinary_skew_is_not() -> None:
    overdue = Overdue.at(NOW, DELAY)

    assert overdue.includes(NOW - DELAY)
    assert not overdue.includes(NOW - DELAY + timedelta(microseconds=1))
    assert not overdue.includes(NOW)
    assert not overdue.includes(NOW + SKEW_TOLERANCE)  # another replica a little ahead
    assert overdue.includes(NOW + SKEW_TOLERANCE + timedelta(microseconds=1))
    assert overdue.includes(NOW + timedelta(days=1))  # our clock went back a day


def test_a_new_alert_from_a_clock_ahead_reads_as_escalated() -> None:
    ahead = NOW + timedelta(hours=3)
    assert effective_alert_status(AlertStatus.NEW, ahead, NOW, DELAY) is AlertStatus.ESCALATED
    assert effective_alert_status(AlertStatus.RESOLVED, ahead, NOW, DELAY) is AlertStatus.RESOLVED
    assert effective_alert_status(AlertStatus.NEW, NOW, NOW, DELAY) is AlertStatus.NEW
