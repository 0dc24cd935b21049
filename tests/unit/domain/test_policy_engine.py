"""The policy engine of SPEC §8, rule by rule, as a pure function."""

from dataclasses import replace

import pytest

from ssbg.domain.enums import Classification, PolicyEffect, PolicyOperation, Role
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.policy_engine import (
    PolicyDecision,
    PolicyLimits,
    PolicyRequest,
    ReasonCategory,
    evaluate_policy,
)
from ssbg.domain.policy_rules import PolicyRecord, PolicyRule

BACKUP, RESTORE, DELETE = PolicyOperation.BACKUP, PolicyOperation.RESTORE, PolicyOperation.DELETE


def request(operation: PolicyOperation = RESTORE, **overrides: object) -> PolicyRequest:
    base = PolicyRequest(
        operation=operation,
        role=Role.ADMIN if operation is not BACKUP else Role.OPERATOR,
        incident_level=IncidentLevel.NORMAL,
        local_hour=10,
        classification=Classification.INTERNAL,
        source_system="db-prod-1",
        department="finance",
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def record(
    name: str, effect: PolicyEffect = PolicyEffect.DENY, priority: int = 100, **rule: object
) -> PolicyRecord:
    return PolicyRecord(
        name=name, effect=effect, priority=priority, rule=PolicyRule.from_json(rule)
    )


def assert_denied(decision: PolicyDecision, rule: str, reason: ReasonCategory) -> None:
    assert not decision.allowed
    assert not decision.requires_mfa
    assert (decision.rule, decision.reason_category) == (rule, reason)


# -- incident level ------------------------------------------------------------------------


@pytest.mark.parametrize("operation", [BACKUP, RESTORE, DELETE])
def test_lockdown_denies_every_operation_first(operation: PolicyOperation) -> None:
    decision = evaluate_policy(
        request(operation, incident_level=IncidentLevel.LOCKDOWN, role=Role.AUDITOR)
    )
    assert_denied(decision, "INCIDENT", ReasonCategory.INCIDENT_LOCKDOWN)


def test_quarantine_sends_restores_to_approval_without_denying() -> None:
    decision = evaluate_policy(
        request(RESTORE, incident_level=IncidentLevel.QUARANTINE, mfa_verified=True)
    )
    assert decision.allowed
    assert decision.requires_approval
    assert decision.reason_category is ReasonCategory.INCIDENT_QUARANTINE


def test_quarantine_does_not_hold_backups() -> None:
    decision = evaluate_policy(request(BACKUP, incident_level=IncidentLevel.QUARANTINE))
    assert decision.allowed
    assert not decision.requires_approval


def test_quarantine_still_applies_the_later_rules() -> None:
    decision = evaluate_policy(
        request(RESTORE, incident_level=IncidentLevel.QUARANTINE, role=Role.OPERATOR)
    )
    assert_denied(decision, "P2", ReasonCategory.ROLE)


# -- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "role", "allowed", "rule"),
    [
        (BACKUP, Role.OPERATOR, True, None),
        (BACKUP, Role.ADMIN, True, None),
        (BACKUP, Role.SUPER_ADMIN, True, None),
        (BACKUP, Role.AUDITOR, False, "P1"),
        (RESTORE, Role.ADMIN, True, None),
        (RESTORE, Role.SUPER_ADMIN, True, None),
        (RESTORE, Role.OPERATOR, False, "P2"),
        (RESTORE, Role.AUDITOR, False, "P2"),
        (DELETE, Role.ADMIN, True, None),
        (DELETE, Role.OPERATOR, False, "D1"),
        (DELETE, Role.AUDITOR, False, "D1"),
    ],
)
def test_roles(operation: PolicyOperation, role: Role, allowed: bool, rule: str | None) -> None:
    decision = evaluate_policy(request(operation, role=role))
    assert decision.allowed is allowed
    if not allowed:
        assert_denied(decision, rule or "", ReasonCategory.ROLE)


# -- classification and MFA ----------------------------------------------------------------


def test_secret_restore_needs_a_super_admin() -> None:
    decision = evaluate_policy(
        request(classification=Classification.SECRET, role=Role.ADMIN, mfa_verified=True)
    )
    assert_denied(decision, "P3", ReasonCategory.CLASSIFICATION)


def test_secret_restore_by_a_super_admin_needs_mfa() -> None:
    without = evaluate_policy(request(classification=Classification.SECRET, role=Role.SUPER_ADMIN))
    with_mfa = evaluate_policy(
        request(classification=Classification.SECRET, role=Role.SUPER_ADMIN, mfa_verified=True)
    )
    assert not without.allowed
    assert without.requires_mfa
    assert (without.rule, without.reason_category) == ("P3", ReasonCategory.MFA_REQUIRED)
    assert with_mfa.allowed
    assert with_mfa.requires_mfa
    assert with_mfa.rule == "P3"


def test_confidential_restore_needs_mfa() -> None:
    without = evaluate_policy(request(classification=Classification.CONFIDENTIAL))
    with_mfa = evaluate_policy(
        request(classification=Classification.CONFIDENTIAL, mfa_verified=True)
    )
    assert not without.allowed
    assert without.requires_mfa
    assert without.rule == "P3b"
    assert with_mfa.allowed


@pytest.mark.parametrize("classification", [Classification.PUBLIC, Classification.INTERNAL])
def test_lower_classifications_restore_without_mfa(classification: Classification) -> None:
    decision = evaluate_policy(request(classification=classification))
    assert decision.allowed
    assert not decision.requires_mfa


@pytest.mark.parametrize("level", [IncidentLevel.ALERT, IncidentLevel.QUARANTINE])
def test_from_incident_level_one_every_restore_needs_mfa(level: IncidentLevel) -> None:
    decision = evaluate_policy(request(classification=Classification.PUBLIC, incident_level=level))
    assert not decision.allowed
    assert decision.requires_mfa
    assert decision.rule == "P3c"


def test_backups_never_need_mfa_from_built_in_rules() -> None:
    decision = evaluate_policy(
        request(
            BACKUP, classification=Classification.SECRET, incident_level=IncidentLevel.QUARANTINE
        )
    )
    assert decision.allowed
    assert not decision.requires_mfa


def test_a_later_deny_wins_over_a_missing_mfa() -> None:
    decision = evaluate_policy(
        request(classification=Classification.CONFIDENTIAL, local_hour=22),
        limits=PolicyLimits(business_hours=(8, 18)),
    )
    assert_denied(decision, "P4", ReasonCategory.BUSINESS_HOURS)


# -- business hours and rates --------------------------------------------------------------


@pytest.mark.parametrize(("hour", "allowed"), [(7, False), (8, True), (17, True), (18, False)])
def test_restores_only_in_business_hours(hour: int, allowed: bool) -> None:
    decision = evaluate_policy(
        request(local_hour=hour), limits=PolicyLimits(business_hours=(8, 18))
    )
    assert decision.allowed is allowed
    if not allowed:
        assert_denied(decision, "P4", ReasonCategory.BUSINESS_HOURS)


def test_business_hours_do_not_limit_backups() -> None:
    decision = evaluate_policy(
        request(BACKUP, local_hour=3), limits=PolicyLimits(business_hours=(8, 18))
    )
    assert decision.allowed


def test_per_key_restore_rate() -> None:
    limits = PolicyLimits(max_restores_per_key_per_hour=10)
    assert evaluate_policy(request(restores_by_key_last_hour=9), limits=limits).allowed
    assert_denied(
        evaluate_policy(request(restores_by_key_last_hour=10), limits=limits),
        "P5",
        ReasonCategory.RATE_LIMITED,
    )


def test_system_restore_rate() -> None:
    limits = PolicyLimits(max_restores_per_hour=50)
    assert evaluate_policy(request(restores_last_hour=49), limits=limits).allowed
    assert_denied(
        evaluate_policy(request(restores_last_hour=50), limits=limits),
        "P6",
        ReasonCategory.RATE_LIMITED,
    )


@pytest.mark.parametrize("level", [IncidentLevel.ALERT, IncidentLevel.QUARANTINE])
def test_from_incident_level_1_the_restore_rates_are_halved(level: IncidentLevel) -> None:
    limits = PolicyLimits(max_restores_per_key_per_hour=10, max_restores_per_hour=50)
    at_level = {"incident_level": level, "mfa_verified": True}
    assert evaluate_policy(request(restores_by_key_last_hour=4, **at_level), limits=limits).allowed
    assert_denied(
        evaluate_policy(request(restores_by_key_last_hour=5, **at_level), limits=limits),
        "P5",
        ReasonCategory.RATE_LIMITED,
    )
    assert evaluate_policy(request(restores_last_hour=24, **at_level), limits=limits).allowed
    assert_denied(
        evaluate_policy(request(restores_last_hour=25, **at_level), limits=limits),
        "P6",
        ReasonCategory.RATE_LIMITED,
    )


def test_a_halved_limit_of_one_stays_one() -> None:
    limits = PolicyLimits(max_restores_per_key_per_hour=1)
    at_level = {"incident_level": IncidentLevel.ALERT, "mfa_verified": True}
    assert evaluate_policy(request(restores_by_key_last_hour=0, **at_level), limits=limits).allowed


def test_the_per_key_rate_is_checked_before_the_system_rate() -> None:
    decision = evaluate_policy(request(restores_by_key_last_hour=99, restores_last_hour=999))
    assert decision.rule == "P5"


def test_rates_do_not_limit_backups() -> None:
    assert evaluate_policy(request(BACKUP, restores_by_key_last_hour=99)).allowed


# -- custom records ------------------------------------------------------------------------


def test_a_matching_deny_record_denies_and_names_itself() -> None:
    decision = evaluate_policy(
        request(BACKUP, source_system="legacy-db-7"),
        [record("no-legacy", source_systems=["legacy-*"], operations=["backup"])],
    )
    assert_denied(decision, "no-legacy", ReasonCategory.CUSTOM_POLICY)


def test_a_record_that_does_not_match_is_ignored() -> None:
    decision = evaluate_policy(
        request(BACKUP, source_system="db-prod-1"),
        [record("no-legacy", source_systems=["legacy-*"])],
    )
    assert decision.allowed


@pytest.mark.parametrize(
    ("rule", "matches"),
    [
        ({"operations": ["restore"]}, False),
        ({"roles": ["admin"]}, False),
        ({"roles": ["operator"]}, True),
        ({"classifications": ["SECRET"]}, False),
        ({"classifications": ["INTERNAL"]}, True),
        ({"departments": ["finance"]}, True),
        ({"departments": ["hr"]}, False),
        ({"hours": "09-11"}, True),
        ({"hours": "11-12"}, False),
        ({"source_systems": ["db-*", "web-?"]}, True),
        ({"source_systems": ["DB-*"]}, False),
        ({}, True),
    ],
)
def test_record_fields_narrow_the_match(rule: dict[str, object], matches: bool) -> None:
    decision = evaluate_policy(request(BACKUP), [record("r", **rule)])
    assert decision.allowed is not matches


def test_records_apply_in_priority_order() -> None:
    decision = evaluate_policy(
        request(BACKUP),
        [
            record("later", priority=20),
            record("first", priority=10),
        ],
    )
    assert decision.rule == "first"


def test_a_require_mfa_record_asks_for_mfa_then_allows_with_it() -> None:
    records = [record("mfa-for-backups", PolicyEffect.REQUIRE_MFA, operations=["backup"])]
    without = evaluate_policy(request(BACKUP), records)
    with_mfa = evaluate_policy(request(BACKUP, mfa_verified=True), records)
    assert not without.allowed
    assert without.requires_mfa
    assert without.rule == "mfa-for-backups"
    assert with_mfa.allowed


def test_a_deny_record_after_a_require_mfa_record_still_denies() -> None:
    decision = evaluate_policy(
        request(BACKUP),
        [
            record("mfa", PolicyEffect.REQUIRE_MFA, priority=1),
            record("deny", PolicyEffect.DENY, priority=2),
        ],
    )
    assert_denied(decision, "deny", ReasonCategory.CUSTOM_POLICY)


def test_built_in_rules_come_before_custom_records() -> None:
    decision = evaluate_policy(request(BACKUP, role=Role.AUDITOR), [record("deny-all")])
    assert decision.rule == "P1"


def test_decisions_describe_themselves_for_the_audit_log() -> None:
    decision = evaluate_policy(request(BACKUP), [record("deny-all")])
    assert decision.audit_details() == {
        "allowed": False,
        "rule": "deny-all",
        "reason_category": "CUSTOM_POLICY",
        "requires_mfa": False,
        "requires_approval": False,
    }


def test_local_hour_must_be_an_hour() -> None:
    with pytest.raises(ValueError, match="local_hour"):
        request(local_hour=24)


# -- P7: crypto-shred ----------------------------------------------------------------------

SHRED = PolicyOperation.CRYPTO_SHRED


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.AUDITOR, Role.ADMIN])
def test_p7_only_a_super_admin_destroys_a_key(role: Role) -> None:
    decision = evaluate_policy(request(SHRED, role=role, mfa_verified=True))
    assert_denied(decision, "P7", ReasonCategory.ROLE)


def test_p7_a_super_admin_needs_mfa() -> None:
    without = evaluate_policy(request(SHRED, role=Role.SUPER_ADMIN))
    with_mfa = evaluate_policy(request(SHRED, role=Role.SUPER_ADMIN, mfa_verified=True))
    assert (without.allowed, without.requires_mfa, without.rule) == (False, True, "P7")
    assert with_mfa.allowed


def test_p7_lockdown_blocks_a_shred_too() -> None:
    decision = evaluate_policy(
        request(
            SHRED, role=Role.SUPER_ADMIN, mfa_verified=True, incident_level=IncidentLevel.LOCKDOWN
        )
    )
    assert_denied(decision, "INCIDENT", ReasonCategory.INCIDENT_LOCKDOWN)
