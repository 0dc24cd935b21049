"""The alert lifecycle (SPEC §13.2) and escalation from stored timestamps."""

from datetime import UTC, datetime, timedelta

import pytest

from ssbg.domain.alerts import (
    AlertStatus,
    AlertStep,
    effective_alert_status,
    next_alert_status,
)
from ssbg.domain.errors import InvalidStateTransition

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
DELAY = timedelta(seconds=900)
S = AlertStatus


@pytest.mark.parametrize(
    ("current", "step", "target"),
    [
        (S.NEW, AlertStep.ACKNOWLEDGE, S.ACKNOWLEDGED),
        (S.ESCALATED, AlertStep.ACKNOWLEDGE, S.ACKNOWLEDGED),
        (S.ACKNOWLEDGED, AlertStep.INVESTIGATE, S.INVESTIGATING),
        (S.ACKNOWLEDGED, AlertStep.RESOLVE, S.RESOLVED),
        (S.INVESTIGATING, AlertStep.RESOLVE, S.RESOLVED),
    ],
)
def test_allowed_steps(current: AlertStatus, step: AlertStep, target: AlertStatus) -> None:
    assert next_alert_status(current, step) is target


ALLOWED = {
    (S.NEW, AlertStep.ACKNOWLEDGE),
    (S.ESCALATED, AlertStep.ACKNOWLEDGE),
    (S.ACKNOWLEDGED, AlertStep.INVESTIGATE),
    (S.ACKNOWLEDGED, AlertStep.RESOLVE),
    (S.INVESTIGATING, AlertStep.RESOLVE),
}


@pytest.mark.parametrize(
    ("current", "step"),
    [(c, s) for c in AlertStatus for s in AlertStep if (c, s) not in ALLOWED],
)
def test_every_other_step_is_refused(current: AlertStatus, step: AlertStep) -> None:
    with pytest.raises(InvalidStateTransition):
        next_alert_status(current, step)


def test_a_new_alert_is_escalated_exactly_when_the_delay_has_passed() -> None:
    just_before = effective_alert_status(S.NEW, T0, T0 + DELAY - timedelta(microseconds=1), DELAY)
    at = effective_alert_status(S.NEW, T0, T0 + DELAY, DELAY)
    assert (just_before, at) == (S.NEW, S.ESCALATED)


@pytest.mark.parametrize("stored", [S.ACKNOWLEDGED, S.INVESTIGATING, S.RESOLVED, S.ESCALATED])
def test_only_new_alerts_escalate(stored: AlertStatus) -> None:
    assert effective_alert_status(stored, T0, T0 + timedelta(days=1), DELAY) is stored
