from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from annotated_types import Interval
from pydantic import BaseModel, Field, StrictInt

from ssbg.api.schemas.common import INT64_MAX, INTEGRAL, StrictInput
from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_verification import ValidationReason, ValidationResult
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.infrastructure.db.models import AuditCheckpoint, AuditLogEntry


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


Sequence = Annotated[StrictInt, Interval(ge=1, le=INT64_MAX), INTEGRAL]


class ValidateRequest(StrictInput):
    from_sequence: Sequence | None = Field(default=None, description="First entry (default 1)")
    to_sequence: Sequence | None = Field(
        default=None, description="Last entry (default: the chain head); not below from_sequence"
    )


class HeadOut(BaseModel):
    sequence: int
    hash: str


class AnchorOut(BaseModel):
    sequence: int
    hash: str
    anchored_at: str = Field(description="When the gateway signed it: YYYY-MM-DDTHH:MM:SS.ffffffZ")


class ValidationResultOut(BaseModel):
    valid: bool
    entries_checked: int
    first_invalid_sequence: int | None
    reason: ValidationReason | None
    head: HeadOut
    checkpoints_verified: int
    anchor: AnchorOut | None = Field(
        default=None,
        description="The signed high-water mark in the key store the chain was checked "
        "against (null: none, or none that verifies: see reason)",
    )

    @classmethod
    def of(cls, result: ValidationResult) -> "ValidationResultOut":
        return cls.model_validate(result.as_dict())


class CheckpointOut(BaseModel):
    sequence_number: int
    entry_hash: str
    created_at: str = Field(description="Exactly the signed text: YYYY-MM-DDTHH:MM:SS.ffffffZ")
    checkpoint_interval: int
    previous_checkpoint_sequence: int
    signing_key_id: str
    signature: str = Field(description="base64 of the DER ECDSA P-384/SHA-384 signature")

    @classmethod
    def of(cls, checkpoint: AuditCheckpoint) -> "CheckpointOut":
        return cls(
            sequence_number=checkpoint.sequence_number,
            entry_hash=checkpoint.entry_hash,
            created_at=format_timestamp(checkpoint.created_at),
            checkpoint_interval=checkpoint.checkpoint_interval,
            previous_checkpoint_sequence=checkpoint.previous_checkpoint_sequence,
            signing_key_id=checkpoint.signing_key_id,
            signature=checkpoint.signature,
        )
