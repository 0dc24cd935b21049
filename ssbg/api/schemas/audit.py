from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.infrastructure.db.models import AuditLogEntry


class AuditEntryOut(BaseModel):
    event_id: UUID
    sequence_number: int
    occurred_at: datetime
    actor_id: UUID | None
    actor_role: str | None
    action: AuditAction
    resource: str
    result: AuditResult
    details: dict[str, Any]
    source_ip: str | None
    request_id: str | None
    incident_level: int
    prev_hash: str
    entry_hash: str

    @classmethod
    def of(cls, entry: AuditLogEntry) -> "AuditEntryOut":
        return cls(
            event_id=entry.event_id,
            sequence_number=entry.sequence_number,
            occurred_at=entry.occurred_at,
            actor_id=entry.actor_id,
            actor_role=entry.actor_role,
            action=AuditAction(entry.action),
            resource=entry.resource,
            result=AuditResult(entry.result),
            details=entry.details,
            source_ip=entry.source_ip,
            request_id=entry.request_id,
            incident_level=entry.incident_level,
            prev_hash=entry.prev_hash,
            entry_hash=entry.entry_hash,
        )
