"""Alerts (SPEC §9, §13.2): severities, the lifecycle, and escalation from stored timestamps.

``NEW → ACKNOWLEDGED → INVESTIGATING → RESOLVED``, ``NEW → ESCALATED`` once an alert stays
unacknowledged for the escalation delay. An escalated alert is acknowledged like a new one.
``RESOLVED`` is final: a later trigger of the same rule and subject opens a new alert.

The stored status says ``NEW`` until the escalation sweep records the escalation; the
*effective* status is computed from ``triggered_at`` whenever an alert is read, so every
replica agrees without a timer (the sweep only sends the notification and writes the entry).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ssbg.domain.errors import InvalidStateTransition
from ssbg.domain.leases import ahead_of


class AlertSeverity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class AlertStatus(StrEnum):
    NEW = "NEW"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    INVESTIGATING = "INVESTIGATING"
    ESCALATED = "ESCALATED"
    RESOLVED = "RESOLVED"

    @property
    def is_open(self) -> bool:
        return self is not AlertStatus.RESOLVED


class AlertStep(StrEnum):
    """What a person does to an alert (the routes' last path segment)."""

    ACKNOWLEDGE = "acknowledge"
    INVESTIGATE = "investigate"
    RESOLVE = "resolve"


ALERT_STEPS: dict[AlertStep, tuple[frozenset[AlertStatus], AlertStatus]] = {
    AlertStep.ACKNOWLEDGE: (
        frozenset({AlertStatus.NEW, AlertStatus.ESCALATED}),
        AlertStatus.ACKNOWLEDGED,
    ),
    AlertStep.INVESTIGATE: (frozenset({AlertStatus.ACKNOWLEDGED}), AlertStatus.INVESTIGATING),
    AlertStep.RESOLVE: (
        frozenset({AlertStatus.ACKNOWLEDGED, AlertStatus.INVESTIGATING}),
        AlertStatus.RESOLVED,
    ),
}

DEFAULT_ESCALATION = timedelta(seconds=900)
MIN_ESCALATION_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Overdue:
    """Which ``NEW`` alerts are overdue for escalation at one moment: those triggered at or
    before ``before`` (the escalation delay ago), and those triggered after ``ahead`` — by a
    clock ahead of ours, which went back since (:mod:`ssbg.domain.leases`). How long such an
    alert has waited is unknown, so it counts as due rather than as a wait as long as the
    jump: escalating early pages someone sooner; escalating a day late pages no one."""

    before: datetime
    ahead: datetime

    @classmethod
    def at(cls, now: datetime, escalation: timedelta) -> "Overdue":
        return cls(before=now - escalation, ahead=ahead_of(now))

    def includes(self, triggered_at: datetime) -> bool:
        return triggered_at <= self.before or triggered_at > self.ahead


def effective_alert_status(
    stored: AlertStatus, triggered_at: datetime, now: datetime, escalation: timedelta
) -> AlertStatus:
    """``ESCALATED`` for a ``NEW`` alert that is overdue (:class:`Overdue`): unacknowledged
    for ``escalation``, or triggered by a clock ahead of ours; otherwise as stored."""
    if stored is AlertStatus.NEW and Overdue.at(now, escalation).includes(triggered_at):
        return AlertStatus.ESCALATED
    return stored


def next_alert_status(current: AlertStatus, step: AlertStep) -> AlertStatus:
    """The status ``step`` moves an alert in ``current`` (effective) status to, or raise."""
    allowed_from, target = ALERT_STEPS[step]
    if current not in allowed_from:
        raise InvalidStateTransition(
            f"An alert in status {current.value} cannot be moved by {step.value}.",
            {"from_status": current.value, "to_status": target.value},
        )
    return target
