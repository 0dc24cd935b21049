from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic import ValidationError as PydanticValidationError

from ssbg.api.schemas.common import StrictInput
from ssbg.domain.backup_fields import (
    DEFAULT_COMPRESSION_LEVEL,
    MAX_COMPRESSION_LEVEL,
    MAX_DESCRIPTION_LENGTH,
    MIN_COMPRESSION_LEVEL,
    SOURCE_SYSTEM_PATTERN,
    check_description,
    normalize_content_type,
    normalize_filename,
)
from ssbg.domain.enums import BackupFailureReason, BackupStatus, Classification, Compression
from ssbg.domain.errors import ValidationFailed
from ssbg.domain.verification import VerificationResult
from ssbg.infrastructure.db.models import BackupMetadata, BackupStatusTransition
from ssbg.services.backups import BackupSubmission

SourceSystem = Annotated[str, StringConstraints(strict=True, pattern=SOURCE_SYSTEM_PATTERN)]
Description = Annotated[
    str,
    StringConstraints(strict=True, max_length=MAX_DESCRIPTION_LENGTH),
    AfterValidator(check_description),
]
Filename = Annotated[str, StringConstraints(strict=True), AfterValidator(normalize_filename)]
CompressionLevel = Annotated[int, Field(ge=MIN_COMPRESSION_LEVEL, le=MAX_COMPRESSION_LEVEL)]


class BackupFieldsIn(StrictInput):
    """The descriptive fields of a submission, from form fields or query parameters."""

    classification: Classification | None = None
    source_system: SourceSystem
    description: Description | None = None
    filename: Filename | None = None
    compression: Compression = Compression.NONE
    compression_level: CompressionLevel | None = None

    @field_validator("compression_level")
    @classmethod
    def _level_needs_zstd(cls, level: int | None, info: ValidationInfo) -> int | None:
        if level is not None and info.data.get("compression") is not Compression.ZSTD:
            raise ValueError("A compression level needs compression=zstd.")
        return level

    @classmethod
    def parse(cls, values: Mapping[str, str | None]) -> "BackupFieldsIn":
        """Validate raw strings (empty counts as absent); ``ValidationFailed`` naming each field."""
        given = {name: value for name, value in values.items() if value not in (None, "")}
        try:
            return cls.model_validate(given)
        except PydanticValidationError as exc:
            details: dict[str, Any] = {}
            for error in exc.errors():
                location = ".".join(str(part) for part in error.get("loc", ())) or "body"
                details.setdefault(location, error.get("msg", "invalid"))
            raise ValidationFailed(details=details) from None

    def to_submission(
        self, content_type: str | None, declared_size: int | None = None
    ) -> BackupSubmission:
        try:
            normalized_type = normalize_content_type(content_type)
        except ValueError as exc:
            raise ValidationFailed(details={"content_type": str(exc)}) from None
        return BackupSubmission(
            classification=self.classification,
            source_system=self.source_system,
            description=self.description,
            original_filename=self.filename,
            content_type=normalized_type,
            declared_size=declared_size,
            compression=self.compression,
            compression_level=self.compression_level or DEFAULT_COMPRESSION_LEVEL,
        )


class LegalHoldOut(BaseModel):
    """A backup's legal hold (SPEC §13.4): while ``held``, nothing deletes the backup."""

    held: bool
    reason: str | None
    at: datetime | None
    by: UUID | None

    @classmethod
    def of(cls, backup: BackupMetadata) -> "LegalHoldOut":
        return cls(
            held=backup.held,
            reason=backup.legal_hold_reason,
            at=backup.legal_hold_at,
            by=backup.legal_hold_by,
        )


class BackupOut(BaseModel):
    backup_id: UUID
    status: BackupStatus
    classification: Classification
    source_system: str
    original_filename: str | None
    description: str | None
    content_type: str
    original_size: int | None
    encrypted_size: int | None
    compression: Compression = Field(
        description="How the payload was compressed before encryption: none or zstd."
    )
    stored_size: int | None = Field(
        description="Bytes of the payload as stored, after compression and before encryption "
        "overhead (equal to original_size without compression); null for backups stored "
        "before SSBG recorded it."
    )
    checksum_plaintext: str | None
    checksum_ciphertext: str | None
    key_version: str
    storage_backend: str
    storage_ref: str
    created_by: UUID
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    failure_reason: BackupFailureReason | None
    last_verified_at: datetime | None
    last_verification_result: VerificationResult | None
    legal_hold: LegalHoldOut

    @classmethod
    def of(cls, backup: BackupMetadata) -> "BackupOut":
        return cls(
            backup_id=backup.id,
            status=backup.status,
            classification=backup.classification,
            source_system=backup.source_system,
            original_filename=backup.original_filename,
            description=backup.description,
            content_type=backup.content_type,
            original_size=backup.original_size,
            encrypted_size=backup.encrypted_size,
            compression=backup.compression,
            stored_size=backup.stored_size,
            checksum_plaintext=backup.checksum_plaintext,
            checksum_ciphertext=backup.checksum_ciphertext,
            key_version=backup.key_version,
            storage_backend=backup.storage_backend,
            storage_ref=backup.storage_ref,
            created_by=backup.created_by,
            created_at=backup.created_at,
            updated_at=backup.updated_at,
            completed_at=backup.completed_at,
            failure_reason=BackupFailureReason(backup.failure_reason)
            if backup.failure_reason
            else None,
            last_verified_at=backup.last_verified_at,
            last_verification_result=VerificationResult(backup.last_verification_result)
            if backup.last_verification_result
            else None,
            legal_hold=LegalHoldOut.of(backup),
        )


class TransitionOut(BaseModel):
    from_status: BackupStatus | None
    to_status: BackupStatus
    at: datetime
    reason: str | None

    @classmethod
    def of(cls, transition: BackupStatusTransition) -> "TransitionOut":
        return cls(
            from_status=transition.from_status,
            to_status=transition.to_status,
            at=transition.at,
            reason=transition.reason,
        )


class BackupStatusOut(BaseModel):
    backup_id: UUID
    status: BackupStatus
    failure_reason: BackupFailureReason | None
    transitions: list[TransitionOut]

    @classmethod
    def of(
        cls, backup: BackupMetadata, transitions: Sequence[BackupStatusTransition]
    ) -> "BackupStatusOut":
        return cls(
            backup_id=backup.id,
            status=backup.status,
            failure_reason=BackupFailureReason(backup.failure_reason)
            if backup.failure_reason
            else None,
            transitions=[TransitionOut.of(t) for t in transitions],
        )


class HoldRequest(StrictInput):
    """Why a legal hold is placed or released (recorded in the audit log)."""

    reason: Annotated[str, StringConstraints(strict=True, min_length=3, max_length=2000)]
