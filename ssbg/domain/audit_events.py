"""Audit events as values: what a use case asks the audit trail to record."""

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.identity import Actor


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: AuditAction
    resource: str
    result: AuditResult
    actor_id: UUID | None = None
    actor_role: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    source_ip: str | None = None
    request_id: str | None = None

    @classmethod
    def by(
        cls,
        actor: Actor | None,
        action: AuditAction,
        resource: str,
        result: AuditResult = AuditResult.SUCCESS,
        **details: Any,
    ) -> "AuditEvent":
        """An event performed by ``actor`` (``None`` for the gateway itself)."""
        if actor is None:
            return cls(action=action, resource=resource, result=result, details=details)
        return cls(
            action=action,
            resource=resource,
            result=result,
            actor_id=actor.key_id,
            actor_role=actor.role.value,
            details=details,
            source_ip=actor.context.source_ip,
            request_id=actor.context.request_id,
        )


def api_key_resource(key_id: UUID) -> str:
    return f"api_key:{key_id}"


def policy_resource(policy_id: UUID) -> str:
    return f"policy:{policy_id}"


def backup_resource(backup_id: UUID) -> str:
    return f"backup:{backup_id}"


def restore_resource(restore_id: UUID) -> str:
    return f"restore:{restore_id}"


def key_version_resource(version: str) -> str:
    return f"key_version:{version}"


def retention_rule_resource(rule_id: UUID) -> str:
    return f"retention_rule:{rule_id}"


def alert_resource(alert_id: UUID) -> str:
    return f"alert:{alert_id}"


SYSTEM_RESOURCE = "system"
AUDIT_RESOURCE = "audit"
INCIDENT_RESOURCE = "incident"
