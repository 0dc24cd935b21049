from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, StringConstraints

from ssbg.api.schemas.common import StrictInput, stripped_pattern
from ssbg.domain.restore_lifecycle import RestoreStatus
from ssbg.infrastructure.db.models import RestoreRequest

Justification = Annotated[
    str,
    StringConstraints(strict=True, pattern=stripped_pattern(10, 2000)),
    AfterValidator(str.strip),
]
Reason = Annotated[
    str,
    StringConstraints(strict=True, pattern=stripped_pattern(3, 1000)),
    AfterValidator(str.strip),
]


class RestoreCreate(StrictInput):
    backup_id: UUID
    justification: Justification


class RestoreReject(StrictInput):
    reason: Reason


class DownloadOut(BaseModel):
    url: str
    token: str | None
    expires_at: datetime | None


class RestoreOut(BaseModel):
    restore_id: UUID
    backup_id: UUID
    status: RestoreStatus
    requested_by: UUID
    justification: str
    mfa_verified: bool
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    approved_by: UUID | None
    approved_at: datetime | None
    rejected_by: UUID | None
    rejected_at: datetime | None
    rejection_reason: str | None
    denial_code: str | None
    failure_reason: str | None
    downloads: int
    download: DownloadOut | None

    @classmethod
    def of(cls, restore: RestoreRequest, api_prefix: str, token: str | None = None) -> "RestoreOut":
        """The record; ``download`` carries ``token`` only in the response that issued it."""
        has_download = restore.status is RestoreStatus.COMPLETED and (
            restore.token_expires_at is not None
        )
        return cls(
            restore_id=restore.id,
            backup_id=restore.backup_id,
            status=restore.status,
            requested_by=restore.requested_by,
            justification=restore.justification,
            mfa_verified=restore.mfa_verified,
            created_at=restore.created_at,
            updated_at=restore.updated_at,
            completed_at=restore.completed_at,
            approved_by=restore.approved_by,
            approved_at=restore.approved_at,
            rejected_by=restore.rejected_by,
            rejected_at=restore.rejected_at,
            rejection_reason=restore.rejection_reason,
            denial_code=restore.denial_code,
            failure_reason=restore.failure_reason,
            downloads=restore.downloads,
            download=DownloadOut(
                url=f"{api_prefix}/restores/{restore.id}/download",
                token=token,
                expires_at=restore.token_expires_at,
            )
            if has_download
            else None,
        )
