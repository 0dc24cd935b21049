"""Incident levels (SPEC §5): 0 NORMAL, 1 ALERT, 2 QUARANTINE, 3 LOCKDOWN.

Level 1 reverts to 0 by itself 30 minutes after the last alert; the effective level is
computed from stored timestamps whenever it is read, so no timer process is needed.
"""

from datetime import datetime, timedelta
from enum import IntEnum


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
    level = IncidentLevel(stored_level)
    if level is IncidentLevel.ALERT:
        reference = max((t for t in (changed_at, last_alert_at) if t is not None), default=None)
        if reference is not None and now - reference >= ALERT_AUTO_REVERT:
            return IncidentLevel.NORMAL
    return level
