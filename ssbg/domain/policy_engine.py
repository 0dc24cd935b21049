"""The policy engine (SPEC §8): one pure function from values to a :class:`PolicyDecision`.

Nothing here reads a clock, a database or a header. The caller gathers the inputs — the
effective incident level, the local hour in ``SSBG_TIMEZONE``, whether a valid TOTP code was
presented, restore counts of the last hour, the active custom records — and gets a decision
back as a value. Rules are evaluated in this order:

============  ======================================================================  ==========
rule          what it checks                                                          operations
============  ======================================================================  ==========
INCIDENT      level 3 (LOCKDOWN) denies everything; level 2 (QUARANTINE) sends         all
              restores to approval (``requires_approval``, not a deny)
P1            backup: role operator, admin or super_admin                             backup
P2            restore: role admin or super_admin                                      restore
D1            delete: role admin or super_admin                                       delete
P3            SECRET restore: super_admin only, and MFA                               restore
P3b           CONFIDENTIAL restore: MFA                                               restore
P3c           incident level ≥ 1: every restore needs MFA                             restore
P4            restores only inside ``SSBG_BUSINESS_HOURS``                            restore
P5            restores per API key in the last hour < ``MAX_RESTORES_PER_KEY_…``      restore
              (P5 and P6 are halved from incident level 1 on)
P6            restores in the last hour < ``SSBG_MAX_RESTORES_PER_HOUR``              restore
P7            crypto-shred: super_admin only, and MFA                                 crypto_shred
<name>        custom records by (priority, name): ``deny`` or ``require_mfa``        as matched
============  ======================================================================  ==========

The first *deny* wins. A missing MFA is not a deny: rules that need MFA are noted and the
evaluation continues, so a request that some later rule denies outright is denied (and never
prompts for a TOTP code). Only when no rule denies and MFA is needed but was not presented is
the decision ``allowed=False, requires_mfa=True`` — the caller asks for ``X-MFA-Token``.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ssbg.domain.enums import Classification, PolicyEffect, PolicyOperation, Role
from ssbg.domain.hours import within_hours
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.policy_rules import PolicyRecord


class ReasonCategory(StrEnum):
    INCIDENT_LOCKDOWN = "INCIDENT_LOCKDOWN"
    INCIDENT_QUARANTINE = "INCIDENT_QUARANTINE"
    ROLE = "ROLE"
    CLASSIFICATION = "CLASSIFICATION"
    MFA_REQUIRED = "MFA_REQUIRED"
    BUSINESS_HOURS = "BUSINESS_HOURS"
    RATE_LIMITED = "RATE_LIMITED"
    CUSTOM_POLICY = "CUSTOM_POLICY"


class BuiltinRule(StrEnum):
    INCIDENT = "INCIDENT"
    P1 = "P1"
    P2 = "P2"
    D1 = "D1"
    P3 = "P3"
    P3B = "P3b"
    P3C = "P3c"
    P4 = "P4"
    P5 = "P5"
    P6 = "P6"
    P7 = "P7"


_BACKUP_ROLES = frozenset({Role.OPERATOR, Role.ADMIN, Role.SUPER_ADMIN})
_ADMIN_ROLES = frozenset({Role.ADMIN, Role.SUPER_ADMIN})


@dataclass(frozen=True, slots=True)
class PolicyLimits:
    """Configuration the built-in rules read (``SSBG_BUSINESS_HOURS``, P5, P6)."""

    business_hours: tuple[int, int] = (0, 24)
    max_restores_per_key_per_hour: int = 10
    max_restores_per_hour: int = 50


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """Everything a decision depends on, as values.

    ``restores_by_key_last_hour`` / ``restores_last_hour`` count earlier restores only (not
    this one); they matter for ``restore`` and are ignored otherwise.
    """

    operation: PolicyOperation
    role: Role
    incident_level: IncidentLevel
    local_hour: int
    classification: Classification | None = None
    source_system: str | None = None
    department: str | None = None
    mfa_verified: bool = False
    restores_by_key_last_hour: int = 0
    restores_last_hour: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.local_hour <= 23:
            raise ValueError("local_hour must be 0-23")


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """``allowed`` — proceed. ``requires_mfa`` — MFA is demanded by ``rule`` (with
    ``allowed=False`` it was not presented yet). ``requires_approval`` — allowed, but only
    through a second person's approval (incident level 2 restores)."""

    allowed: bool
    rule: str | None
    reason_category: ReasonCategory | None
    message: str
    requires_mfa: bool = False
    requires_approval: bool = False

    @property
    def denied(self) -> bool:
        return not self.allowed

    def audit_details(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "rule": self.rule,
            "reason_category": self.reason_category.value if self.reason_category else None,
            "requires_mfa": self.requires_mfa,
            "requires_approval": self.requires_approval,
        }


def _deny(rule: str, reason: ReasonCategory, message: str) -> PolicyDecision:
    return PolicyDecision(allowed=False, rule=rule, reason_category=reason, message=message)


@dataclass(slots=True)
class _Evaluation:
    mfa_rule: str | None = None
    mfa_reason: ReasonCategory | None = None
    approval: bool = False

    def need_mfa(self, rule: str, reason: ReasonCategory) -> None:
        if self.mfa_rule is None:
            self.mfa_rule, self.mfa_reason = rule, reason


def evaluate_policy(
    request: PolicyRequest,
    records: Iterable[PolicyRecord] = (),
    limits: PolicyLimits | None = None,
) -> PolicyDecision:
    """Decide ``request``; ``records`` are the *active* custom policy records."""
    limits = limits or PolicyLimits()
    state = _Evaluation()
    for check in (_incident, _role, _classification, _business_hours, _rates):
        denial = check(request, limits, state)
        if denial is not None:
            return denial
    denial = _custom_records(request, records, state)
    if denial is not None:
        return denial
    if state.mfa_rule is not None and not request.mfa_verified:
        return PolicyDecision(
            allowed=False,
            rule=state.mfa_rule,
            reason_category=state.mfa_reason,
            message="A TOTP code (X-MFA-Token) is required for this operation.",
            requires_mfa=True,
        )
    if state.approval:
        return PolicyDecision(
            allowed=True,
            rule=BuiltinRule.INCIDENT.value,
            reason_category=ReasonCategory.INCIDENT_QUARANTINE,
            message="Incident level QUARANTINE: the restore needs a second admin's approval.",
            requires_mfa=state.mfa_rule is not None,
            requires_approval=True,
        )
    return PolicyDecision(
        allowed=True,
        rule=state.mfa_rule,
        reason_category=None,
        message="Allowed.",
        requires_mfa=state.mfa_rule is not None,
    )


def _incident(
    request: PolicyRequest, _limits: PolicyLimits, state: _Evaluation
) -> PolicyDecision | None:
    if request.incident_level >= IncidentLevel.LOCKDOWN:
        return _deny(
            BuiltinRule.INCIDENT.value,
            ReasonCategory.INCIDENT_LOCKDOWN,
            "The gateway is in incident lockdown: every operation is blocked.",
        )
    if (
        request.incident_level >= IncidentLevel.QUARANTINE
        and request.operation is PolicyOperation.RESTORE
    ):
        state.approval = True
    return None


def _role(
    request: PolicyRequest, _limits: PolicyLimits, state: _Evaluation
) -> PolicyDecision | None:
    operation, role = request.operation, request.role
    if operation is PolicyOperation.BACKUP and role not in _BACKUP_ROLES:
        return _deny(BuiltinRule.P1.value, ReasonCategory.ROLE, "Backups need an operator key.")
    if operation is PolicyOperation.RESTORE and role not in _ADMIN_ROLES:
        return _deny(BuiltinRule.P2.value, ReasonCategory.ROLE, "Restores need an admin key.")
    if operation is PolicyOperation.DELETE and role not in _ADMIN_ROLES:
        return _deny(BuiltinRule.D1.value, ReasonCategory.ROLE, "Deletes need an admin key.")
    if operation is PolicyOperation.CRYPTO_SHRED:
        if role is not Role.SUPER_ADMIN:
            return _deny(
                BuiltinRule.P7.value, ReasonCategory.ROLE, "Crypto-shredding needs a super_admin."
            )
        state.need_mfa(BuiltinRule.P7.value, ReasonCategory.MFA_REQUIRED)
    return None


def _classification(
    request: PolicyRequest, _limits: PolicyLimits, state: _Evaluation
) -> PolicyDecision | None:
    if request.operation is not PolicyOperation.RESTORE:
        return None
    if request.classification is Classification.SECRET:
        if request.role is not Role.SUPER_ADMIN:
            return _deny(
                BuiltinRule.P3.value,
                ReasonCategory.CLASSIFICATION,
                "SECRET backups are restored by a super_admin only.",
            )
        state.need_mfa(BuiltinRule.P3.value, ReasonCategory.MFA_REQUIRED)
    elif request.classification is Classification.CONFIDENTIAL:
        state.need_mfa(BuiltinRule.P3B.value, ReasonCategory.MFA_REQUIRED)
    if request.incident_level >= IncidentLevel.ALERT:
        state.need_mfa(BuiltinRule.P3C.value, ReasonCategory.MFA_REQUIRED)
    return None


def _business_hours(
    request: PolicyRequest, limits: PolicyLimits, _state: _Evaluation
) -> PolicyDecision | None:
    if request.operation is PolicyOperation.RESTORE and not within_hours(
        limits.business_hours, request.local_hour
    ):
        start, end = limits.business_hours
        return _deny(
            BuiltinRule.P4.value,
            ReasonCategory.BUSINESS_HOURS,
            f"Outside business hours: restores are allowed between {start:02d}:00 and "
            f"{end:02d}:00 only.",
        )
    return None


def _rates(
    request: PolicyRequest, limits: PolicyLimits, _state: _Evaluation
) -> PolicyDecision | None:
    if request.operation is not PolicyOperation.RESTORE:
        return None
    per_key, per_gateway = restore_limits(limits, request.incident_level)
    if request.restores_by_key_last_hour >= per_key:
        return _deny(
            BuiltinRule.P5.value,
            ReasonCategory.RATE_LIMITED,
            f"At most {per_key} restores per key per hour.",
        )
    if request.restores_last_hour >= per_gateway:
        return _deny(
            BuiltinRule.P6.value,
            ReasonCategory.RATE_LIMITED,
            f"At most {per_gateway} restores per hour on this gateway.",
        )
    return None


def restore_limits(limits: PolicyLimits, level: IncidentLevel) -> tuple[int, int]:
    """P5 and P6 at ``level``: halved from incident level 1 on (SPEC §13.2), never below 1."""
    if level >= IncidentLevel.ALERT:
        return (
            max(1, limits.max_restores_per_key_per_hour // 2),
            max(1, limits.max_restores_per_hour // 2),
        )
    return limits.max_restores_per_key_per_hour, limits.max_restores_per_hour


def _custom_records(
    request: PolicyRequest, records: Iterable[PolicyRecord], state: _Evaluation
) -> PolicyDecision | None:
    for record in sorted(records, key=lambda r: (r.priority, r.name)):
        if not record.rule.matches(
            operation=request.operation,
            role=request.role,
            classification=request.classification,
            source_system=request.source_system,
            department=request.department,
            local_hour=request.local_hour,
        ):
            continue
        if record.effect is PolicyEffect.DENY:
            return _deny(
                record.name, ReasonCategory.CUSTOM_POLICY, f"Denied by policy {record.name!r}."
            )
        state.need_mfa(record.name, ReasonCategory.MFA_REQUIRED)
    return None
