"""Rules M1-M10 (SPEC §9, §13.2): each threshold at its edge, and what each rule watches."""

import pytest

from ssbg.domain.alerts import AlertSeverity
from ssbg.domain.detection import (
    RULES,
    RestoreVolume,
    RuleId,
    m1_fires,
    m2_fires,
    m3_fires,
    m4_fires,
    m5_fires,
    m7_fires,
    m8_fires,
    rules_triggered_by,
    validation_failed,
)
from ssbg.domain.incident import IncidentLevel

GIB = 1024**3


def test_m1_fires_at_five_failures_not_four() -> None:
    assert (m1_fires(4), m1_fires(5), m1_fires(6)) == (False, True, True)


def test_m2_fires_at_ten_restores_not_nine() -> None:
    assert (m2_fires(9), m2_fires(10)) == (False, True)


def volume(today: int, daily: int, *, restores: int = 7, history: int = 7) -> RestoreVolume:
    return RestoreVolume(
        today_bytes=today,
        trailing_bytes=[daily] * 7,
        trailing_restores=restores,
        history_days=history,
    )


def test_m3_fires_at_three_times_the_trailing_daily_mean() -> None:
    assert m3_fires(volume(3 * GIB, GIB), GIB)
    assert not m3_fires(volume(3 * GIB - 1, GIB), GIB)


def test_m3_needs_seven_days_of_history_and_a_restore_a_day_on_average() -> None:
    assert not m3_fires(volume(30 * GIB, GIB, history=6), GIB)
    assert not m3_fires(volume(30 * GIB, GIB, restores=6), GIB)
    assert m3_fires(volume(30 * GIB, GIB, restores=7, history=7), GIB)


def test_m3_needs_the_minimum_volume_today() -> None:
    quiet = volume(3 * 1024, 1024)  # three times the mean, but kilobytes
    assert not m3_fires(quiet, GIB)
    assert m3_fires(quiet, 3 * 1024)


def test_m3_compares_with_the_mean_of_uneven_days() -> None:
    uneven = RestoreVolume(
        today_bytes=9 * GIB,
        trailing_bytes=[0, 0, 0, 0, 0, 0, 21 * GIB],  # mean 3 GiB
        trailing_restores=7,
        history_days=30,
    )
    assert m3_fires(uneven, GIB)
    assert not m3_fires(RestoreVolume(9 * GIB - 1, uneven.trailing_bytes, 7, 30), GIB)


def test_m4_fires_only_for_a_key_seen_elsewhere_and_never_here() -> None:
    assert m4_fires(seen_from_other_address=True, seen_from_this_address=False)
    assert not m4_fires(seen_from_other_address=False, seen_from_this_address=False)  # first
    assert not m4_fires(seen_from_other_address=True, seen_from_this_address=True)


def test_m5_never_fires_while_business_hours_are_the_whole_day() -> None:
    assert not any(m5_fires((0, 24), hour) for hour in range(24))


def test_m5_fires_outside_business_hours_only() -> None:
    hours = (8, 18)
    assert [hour for hour in range(24) if m5_fires(hours, hour)] == [
        *range(8),
        *range(18, 24),
    ]


def test_a_failed_partial_validation_is_m6_and_a_failed_full_one_m10() -> None:
    assert validation_failed("FAILED", False) == (True, False)
    assert validation_failed("FAILED", True) == (False, True)
    assert validation_failed("SUCCESS", True) == (False, False)
    assert validation_failed("SUCCESS", False) == (False, False)


def test_m7_fires_at_three_restore_failures_not_two() -> None:
    assert (m7_fires(2), m7_fires(3)) == (False, True)


def test_m8_fires_at_five_deletions_not_four() -> None:
    assert (m8_fires(4), m8_fires(5)) == (False, True)


@pytest.mark.parametrize(
    ("rule_id", "severity", "level"),
    [
        (RuleId.M1, AlertSeverity.HIGH, 1),
        (RuleId.M2, AlertSeverity.HIGH, 1),
        (RuleId.M3, AlertSeverity.HIGH, 2),
        (RuleId.M4, AlertSeverity.MEDIUM, 1),
        (RuleId.M5, AlertSeverity.MEDIUM, 1),
        (RuleId.M6, AlertSeverity.CRITICAL, 2),
        (RuleId.M7, AlertSeverity.HIGH, 2),
        (RuleId.M8, AlertSeverity.CRITICAL, 2),
        (RuleId.M9, AlertSeverity.MEDIUM, 1),
        (RuleId.M10, AlertSeverity.CRITICAL, 3),
    ],
)
def test_each_rule_has_the_severity_and_level_of_the_spec(
    rule_id: RuleId, severity: AlertSeverity, level: int
) -> None:
    rule = RULES[rule_id]
    assert (rule.severity, rule.level) == (severity, IncidentLevel(level))


@pytest.mark.parametrize(
    ("action", "rules"),
    [
        ("AUTH_FAILURE", ["M1"]),
        ("RESTORE_REQUEST", ["M2", "M4"]),
        ("RESTORE_COMPLETE", ["M3"]),
        ("KEY_UNWRAP", ["M5"]),
        ("AUDIT_VALIDATE", ["M6", "M10"]),
        ("TAMPERING_DETECTED", ["M6"]),
        ("RESTORE_FAILED", ["M7"]),
        ("BACKUP_DELETE", ["M8"]),
        ("POLICY_CREATE", ["M9"]),
        ("POLICY_UPDATE", ["M9"]),
        # a retention rule decides what is deleted: a change to one is a policy change
        ("RETENTION_RULE_CREATE", ["M9"]),
        ("RETENTION_RULE_UPDATE", ["M9"]),
        # deletions by retention are not M8's hand deletions (see docs/operations.md)
        ("RETENTION_DELETE", []),
        ("RETENTION_APPLY", []),
        ("BACKUP_COMPLETE", []),
        ("ALERT_TRIGGER", []),
        ("INCIDENT_LEVEL_CHANGE", []),
    ],
)
def test_which_rules_an_action_can_trigger(action: str, rules: list[str]) -> None:
    assert [rule.rule_id.value for rule in rules_triggered_by(action)] == rules
