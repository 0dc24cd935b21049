from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints, model_validator

from ssbg.api.schemas.common import StoredDatetime, StrictInput
from ssbg.domain.enums import BackupStatus, Classification
from ssbg.domain.verification import (
    SOURCE_GLOB_PATTERN,
    VERIFIABLE_STATUSES,
    InvalidReason,
    VerificationResult,
    VerifyJobStatus,
    VerifySelection,
)
from ssbg.infrastructure.db.models import VerifyJob
from ssbg.services.verification.scrub import VerificationOutcome

Reason = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=10, max_length=1000)
]


class VerificationOut(BaseModel):
    """What a verification found. No plaintext and no checksum values: only the verdict."""

    backup_id: UUID
    valid: bool
    result: VerificationResult
    # when the verification started reading (the backup's ``last_verified_at``)
    verified_at: datetime
    # why it is INVALID: OBJECT_MISSING, AUTHENTICATION_FAILED or CHECKSUM_MISMATCH
    reason: InvalidReason | None
    # for CHECKSUM_MISMATCH: which of plaintext_bytes, ciphertext_bytes, checksum_plaintext,
    # checksum_ciphertext differ from the metadata
    mismatched: list[str]
    # the backup's status afterwards (an INVALID ACTIVE backup is now QUARANTINED)
    status: BackupStatus
    # False when a verification that started later had already been recorded on the backup
    recorded: bool

    @classmethod
    def of(cls, outcome: VerificationOutcome) -> "VerificationOut":
        return cls(
            backup_id=outcome.backup.id,
            valid=outcome.valid,
            result=VerificationResult.VALID if outcome.valid else VerificationResult.INVALID,
            verified_at=outcome.verified_at,
            reason=outcome.finding.reason,
            mismatched=list(outcome.finding.mismatched),
            status=outcome.backup.status,
            recorded=outcome.recorded,
        )


class ReleaseIn(StrictInput):
    reason: Reason


class VerifyJobIn(StrictInput):
    """Which backups to verify; every field left out matches everything (default: every
    ACTIVE and QUARANTINED backup)."""

    source_system: Annotated[str, Field(pattern=SOURCE_GLOB_PATTERN)] | None = Field(
        default=None, description="A glob (fnmatch, case-sensitive), e.g. db-*"
    )
    classification: Classification | None = None
    status: (
        Annotated[list[Literal["ACTIVE", "QUARANTINED"]], Field(min_length=1, max_length=2)] | None
    ) = None
    created_from: StoredDatetime | None = None
    created_to: StoredDatetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "VerifyJobIn":
        if self.created_from and self.created_to and self.created_from >= self.created_to:
            raise ValueError("created_from must be before created_to")
        return self

    def to_selection(self) -> VerifySelection:
        return VerifySelection(
            statuses=(
                tuple(BackupStatus(status) for status in self.status)
                if self.status
                else VERIFIABLE_STATUSES
            ),
            source_system=self.source_system,
            classification=self.classification,
            created_from=self.created_from,
            created_to=self.created_to,
        )


class VerifyJobOut(BaseModel):
    job_id: UUID
    status: VerifyJobStatus
    selection: dict[str, Any]
    # backups in the selection when the job started
    total: int
    # backups verified so far (VALID or INVALID)
    verified: int
    # of which INVALID (now QUARANTINED), or whose metadata row failed its seal
    failed: int
    created_by: UUID
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, job: VerifyJob) -> "VerifyJobOut":
        return cls(
            job_id=job.id,
            status=VerifyJobStatus(job.status),
            selection=job.selection,
            total=job.total,
            verified=job.verified,
            failed=job.failed,
            created_by=job.created_by,
            started_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
        )
