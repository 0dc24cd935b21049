"""Policy before execution (SPEC §8): gather the engine's inputs, decide, prepare the evidence.

:meth:`PolicyEnforcer.decide` runs inside the caller's transaction: it reads the effective
incident level and the active custom records, computes the local hour, calls the pure
:func:`~ssbg.domain.policy_engine.evaluate_policy` and returns the decision together with the
``POLICY_CHECK_ALLOW`` / ``POLICY_CHECK_DENY`` event. The caller appends that event late in its
transaction (the audit append holds the chain-head lock until commit) and — for a denial —
commits it before raising :func:`policy_error`, so a denial's entry persists although the
request fails.

Restores pass ``restores_by_key_last_hour`` / ``restores_last_hour`` (P5/P6) in
:class:`PolicyCheck`; the engine ignores them for other operations.
"""

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from ssbg.domain.audit_events import AuditEvent
from ssbg.domain.enums import (
    AuditAction,
    AuditResult,
    Classification,
    PolicyOperation,
)
from ssbg.domain.errors import (
    AuthMfaRequired,
    IncidentLockdown,
    PolicyDenied,
    RateLimited,
    SsbgError,
)
from ssbg.domain.hours import parse_hours
from ssbg.domain.identity import Actor
from ssbg.domain.incident import IncidentLevel, effective_incident_level
from ssbg.domain.policy_engine import (
    PolicyDecision,
    PolicyLimits,
    PolicyRequest,
    ReasonCategory,
    evaluate_policy,
)
from ssbg.domain.policy_rules import PolicyRecord, PolicyRule
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import Policy
from ssbg.services.unit_of_work import UnitOfWork
from ssbg.settings import Settings

log = structlog.get_logger("ssbg.policy")


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    operation: PolicyOperation
    resource: str
    classification: Classification | None = None
    source_system: str | None = None
    mfa_verified: bool = False
    restores_by_key_last_hour: int = 0
    restores_last_hour: int = 0
    audit_details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    decision: PolicyDecision
    incident_level: IncidentLevel
    event: AuditEvent  # POLICY_CHECK_ALLOW or POLICY_CHECK_DENY, to append in the same tx


def _record_of(policy: Policy) -> PolicyRecord:
    try:
        rule = PolicyRule.from_json(policy.rule)
    except ValueError:
        # Stored rules were validated when written; one that no longer parses matches
        # everything, so a damaged deny record fails closed rather than silently vanishing.
        log.error("policy_rule_unreadable", policy=policy.name)
        rule = PolicyRule()
    return PolicyRecord(name=policy.name, effect=policy.effect, priority=policy.priority, rule=rule)


class PolicyEnforcer:
    def __init__(self, clock: Clock, settings: Settings) -> None:
        self._clock = clock
        self._zone = ZoneInfo(settings.timezone)
        self._limits = PolicyLimits(
            business_hours=parse_hours(settings.business_hours),
            max_restores_per_key_per_hour=settings.max_restores_per_key_per_hour,
            max_restores_per_hour=settings.max_restores_per_hour,
        )

    async def decide(self, tx: UnitOfWork, actor: Actor, check: PolicyCheck) -> PolicyOutcome:
        now = self._clock.now()
        state = await tx.system_state.get()
        level = effective_incident_level(
            state.incident_level, state.incident_changed_at, state.last_alert_at, now
        )
        records = [_record_of(p) for p in await tx.policies.list_policies(active_only=True)]
        decision = evaluate_policy(
            PolicyRequest(
                operation=check.operation,
                role=actor.role,
                incident_level=level,
                local_hour=now.astimezone(self._zone).hour,
                classification=check.classification,
                source_system=check.source_system,
                department=actor.principal.department,
                mfa_verified=check.mfa_verified,
                restores_by_key_last_hour=check.restores_by_key_last_hour,
                restores_last_hour=check.restores_last_hour,
            ),
            records,
            self._limits,
        )
        event = AuditEvent.by(
            actor,
            AuditAction.POLICY_CHECK_ALLOW if decision.allowed else AuditAction.POLICY_CHECK_DENY,
            check.resource,
            AuditResult.SUCCESS if decision.allowed else AuditResult.DENIED,
            operation=check.operation.value,
            classification=check.classification.value if check.classification else None,
            source_system=check.source_system,
            mfa_verified=check.mfa_verified,
            **decision.audit_details(),
            **check.audit_details,
        )
        return PolicyOutcome(decision=decision, incident_level=level, event=event)


def policy_error(decision: PolicyDecision) -> SsbgError:
    """The contract's error for a decision that does not allow the request."""
    details = {
        "rule": decision.rule,
        "reason_category": decision.reason_category.value if decision.reason_category else None,
    }
    if decision.reason_category is ReasonCategory.INCIDENT_LOCKDOWN:
        return IncidentLockdown(decision.message, details)
    if decision.requires_mfa:
        return AuthMfaRequired(decision.message, details)
    if decision.reason_category is ReasonCategory.RATE_LIMITED:
        return RateLimited(decision.message, details, retry_after_seconds=3600)
    return PolicyDenied(decision.message, details)
