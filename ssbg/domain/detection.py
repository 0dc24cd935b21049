"""The detection rules M1-M10 (SPEC §9, §13.2) as pure functions over counts and events.

Each rule has a severity, the incident level its alert raises the gateway to, the audit
actions that can trigger it, and a threshold test the detector calls with counts it read in
the triggering entry's transaction. Nothing here reads a clock or a database.

No rule fires on a fresh install's ordinary first use (alert fatigue is a defect): M3 needs a
baseline of history, M4 a key already seen from another address, M5 business hours narrower
than the whole day.

M8 counts deletions by hand (``BACKUP_DELETE``, refused attempts included). A deletion by
retention is ``RETENTION_DELETE``: a nightly run that lets fifty expired backups go is the rules
working, not an attack. What decides those deletions — a retention rule — is watched instead:
creating or changing one is a policy change (M9), so a rule weakened with a stolen key raises an
alert before any run deletes by it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from ssbg.domain.alerts import AlertSeverity
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.hours import within_hours
from ssbg.domain.incident import IncidentLevel


class RuleId(StrEnum):
    M1 = "M1"
    M2 = "M2"
    M3 = "M3"
    M4 = "M4"
    M5 = "M5"
    M6 = "M6"
    M7 = "M7"
    M8 = "M8"
    M9 = "M9"
    M10 = "M10"


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: RuleId
    severity: AlertSeverity
    level: IncidentLevel
    title: str
    triggers: frozenset[AuditAction]


M1_FAILURES, M1_WINDOW = 5, timedelta(minutes=5)
M2_RESTORES, M2_WINDOW = 10, timedelta(minutes=60)
M3_FACTOR, M3_BASELINE_DAYS = 3, 7
M7_FAILURES, M7_WINDOW = 3, timedelta(minutes=10)
M8_DELETES, M8_WINDOW = 5, timedelta(minutes=60)

_HIGH, _MEDIUM, _CRITICAL = AlertSeverity.HIGH, AlertSeverity.MEDIUM, AlertSeverity.CRITICAL
_ALERT, _QUARANTINE = IncidentLevel.ALERT, IncidentLevel.QUARANTINE

RULES: dict[RuleId, Rule] = {
    rule.rule_id: rule
    for rule in (
        Rule(RuleId.M1, _HIGH, _ALERT, "Repeated authentication failures from one address",
             frozenset({AuditAction.AUTH_FAILURE})),
        Rule(RuleId.M2, _HIGH, _ALERT, "Many restores by one key within an hour",
             frozenset({AuditAction.RESTORE_REQUEST})),
        Rule(RuleId.M3, _HIGH, _QUARANTINE, "Restore volume far above the 7-day daily mean",
             frozenset({AuditAction.RESTORE_COMPLETE})),
        Rule(RuleId.M4, AlertSeverity.MEDIUM, _ALERT,
             "Restore from an address never seen for that key",
             frozenset({AuditAction.RESTORE_REQUEST})),
        Rule(RuleId.M5, _MEDIUM, _ALERT, "Key unwrapped outside business hours",
             frozenset({AuditAction.KEY_UNWRAP})),
        Rule(RuleId.M6, _CRITICAL, _QUARANTINE, "Evidence of tampering",
             frozenset({AuditAction.AUDIT_VALIDATE, AuditAction.TAMPERING_DETECTED})),
        Rule(RuleId.M7, _HIGH, _QUARANTINE, "Repeated restore failures",
             frozenset({AuditAction.RESTORE_FAILED})),
        Rule(RuleId.M8, _CRITICAL, _QUARANTINE, "Mass deletion of backups",
             frozenset({AuditAction.BACKUP_DELETE})),
        Rule(RuleId.M9, _MEDIUM, _ALERT, "A policy or retention rule was changed",
             frozenset({AuditAction.POLICY_CREATE, AuditAction.POLICY_UPDATE,
                        AuditAction.RETENTION_RULE_CREATE, AuditAction.RETENTION_RULE_UPDATE})),
        Rule(RuleId.M10, _CRITICAL, IncidentLevel.LOCKDOWN, "Full audit chain validation failed",
             frozenset({AuditAction.AUDIT_VALIDATE})),
    )
}  # fmt: skip

TRIGGERING_ACTIONS: frozenset[AuditAction] = frozenset().union(
    *(rule.triggers for rule in RULES.values())
)


def rules_triggered_by(action: str) -> tuple[Rule, ...]:
    """The rules an audit entry with ``action`` can trigger (most actions: none)."""
    return tuple(rule for rule in RULES.values() if action in rule.triggers)


def m1_fires(failures_from_address: int) -> bool:
    """≥ 5 authentication failures from one source address within 5 minutes."""
    return failures_from_address >= M1_FAILURES


def m2_fires(restores_by_key: int) -> bool:
    """≥ 10 restore requests by one key within 60 minutes."""
    return restores_by_key >= M2_RESTORES


@dataclass(frozen=True, slots=True)
class RestoreVolume:
    """Bytes restored today and on each of the ``M3_BASELINE_DAYS`` days before it (oldest
    first, days without restores as 0), the restores on those days, and how many days of
    history the gateway has."""

    today_bytes: int
    trailing_bytes: Sequence[int]
    trailing_restores: int
    history_days: int

    @property
    def trailing_daily_mean(self) -> float:
        return sum(self.trailing_bytes) / M3_BASELINE_DAYS


def m3_has_baseline(volume: RestoreVolume) -> bool:
    """Seven days of history with at least one restore a day on average."""
    return volume.history_days >= M3_BASELINE_DAYS and (
        volume.trailing_restores >= M3_BASELINE_DAYS
    )


def m3_fires(volume: RestoreVolume, min_bytes: int) -> bool:
    """Today's restore volume ≥ 3 times the trailing 7-day daily mean, with a baseline and at
    least ``min_bytes`` restored today."""
    if not m3_has_baseline(volume) or volume.today_bytes < min_bytes:
        return False
    # Integer comparison: today * 7 >= 3 * (sum of the trailing days).
    return volume.today_bytes * M3_BASELINE_DAYS >= M3_FACTOR * sum(volume.trailing_bytes)


def m4_fires(seen_from_other_address: bool, seen_from_this_address: bool) -> bool:
    """A restore from an address the key never restored from, by a key that did from another."""
    return seen_from_other_address and not seen_from_this_address


def m5_fires(business_hours: tuple[int, int], local_hour: int) -> bool:
    """A key unwrapped outside business hours; never while they are ``00-24``."""
    return not within_hours(business_hours, local_hour)


def validation_failed(result: str, full_chain: object) -> tuple[bool, bool]:
    """Whether an ``AUDIT_VALIDATE`` entry triggers M6 (a failed partial range) and M10 (a
    failed whole chain): ``(m6, m10)``."""
    failed = result == AuditResult.FAILED
    whole = full_chain is True
    return failed and not whole, failed and whole


def m7_fires(restore_failures: int) -> bool:
    """≥ 3 restore failures within 10 minutes."""
    return restore_failures >= M7_FAILURES


def m8_fires(deletions: int) -> bool:
    """≥ 5 backup deletions within 60 minutes."""
    return deletions >= M8_DELETES
