from datetime import UTC, datetime, timedelta

from ssbg.domain.incident import IncidentLevel, effective_incident_level

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_alert_level_reverts_thirty_minutes_after_the_last_alert() -> None:
    last_alert = T0 + timedelta(minutes=10)
    assert effective_incident_level(1, T0, last_alert, T0 + timedelta(minutes=39)) == 1
    assert (
        effective_incident_level(1, T0, last_alert, T0 + timedelta(minutes=40))
        is IncidentLevel.NORMAL
    )


def test_quarantine_and_lockdown_never_revert_by_themselves() -> None:
    much_later = T0 + timedelta(days=30)
    assert effective_incident_level(2, T0, T0, much_later) is IncidentLevel.QUARANTINE
    assert effective_incident_level(3, T0, T0, much_later) is IncidentLevel.LOCKDOWN
