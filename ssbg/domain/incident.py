"""Incident levels (SPEC §5): 0 NORMAL, 1 ALERT, 2 QUARANTINE, 3 LOCKDOWN.

Level 1 reverts to 0 by itself 30 minutes after the last alert; the effective level is
computed from stored timestamps whenever it is read, so no timer process is needed.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from ssbg.domain.errors import InvalidStateTransition


@dataclass(frozen=True, slots=True)
class IncidentState:
    """The stored incident columns, from which the effective level is computed."""

    level: int
    changed_at: datetime | None
    last_alert_at: datetime | None


class IncidentLevel(IntEnum):
    NORMAL = 0
    ALERT = 1
    QUARANTINE = 2
    LOCKDOWN = 3


ALERT_AUTO_REVERT = timedelta(minutes=30)


def effective_incident_level(
    stored_level: int,
    changed_at: datetime | None,
    last_alert_at: datetime | None,
    now: datetime,
) -> IncidentLevel:
    revert_at = auto_revert_at(stored_level, changed_at, last_alert_at)
    if revert_at is not None and now >= revert_at:
        return IncidentLevel.NORMAL
    return IncidentLevel(stored_level)


def check_incident_change(current: IncidentLevel, target: IncidentLevel) -> None:
    """Manual level changes (SPEC §5).

    Any level may be raised. Nothing over the API leaves LOCKDOWN: only a release on the host
    (:func:`check_release`). QUARANTINE is left only
    by this manual de-escalation; ALERT also reverts by itself (see ``effective_incident_level``).
    Setting the level it already has is refused, so every change recorded is a real change.
    """
    if current is IncidentLevel.LOCKDOWN:
        raise InvalidStateTransition(
            "Incident level 3 (LOCKDOWN) is lifted only on the host (ssbg incident release).",
            {"from_level": int(current), "to_level": int(target)},
        )
    if target == current:
        raise InvalidStateTransition(
            f"The incident level is already {int(current)}.",
            {"from_level": int(current), "to_level": int(target)},
        )


def check_release(current: IncidentLevel, target: IncidentLevel) -> None:
    """A release on the host (``ssbg incident release``) only lowers the level; it is the
    only way out of LOCKDOWN."""
    if target >= current:
        raise InvalidStateTransition(
            f"A release lowers the incident level; it is {int(current)}.",
            {"from_level": int(current), "to_level": int(target)},
        )


def auto_revert_at(
    stored_level: int, changed_at: datetime | None, last_alert_at: datetime | None
) -> datetime | None:
    """When an ALERT level reverts to NORMAL by itself, or ``None`` if it never does."""
    if stored_level != IncidentLevel.ALERT:
        return None
    reference = max((t for t in (changed_at, last_alert_at) if t is not None), default=None)
    return reference + ALERT_AUTO_REVERT if reference is not None else None
