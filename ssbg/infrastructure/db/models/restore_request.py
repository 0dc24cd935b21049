from datetime import datetime
from uuid import UUID

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.domain.restore_lifecycle import RestoreStatus
from ssbg.infrastructure.db.base import Base, Sealed, UTCDateTime, enum_column


class RestoreRequest(Sealed, Base):
    """One request to restore a backup, whatever its outcome (SPEC §3 Restores).

    ``backup_id`` is deliberately not a foreign key: a request for a backup that does not
    exist is recorded too (probing is evidence). The download token is stored only as its
    SHA-256 (``token_hash``) and is bound to ``requested_by``. ``lease_expires_at`` is renewed
    while a gateway verifies the backup; a lapsed lease on a ``VERIFYING`` request means that
    gateway died, and recovery fails the request.
    """

    __tablename__ = "restore_requests"
    __table_args__ = (
        Index("ix_restore_requests_requested_by_created_at", "requested_by", "created_at"),
        Index("ix_restore_requests_created_at", "created_at"),
        Index("ix_restore_requests_status_lease", "status", "lease_expires_at"),
        Index("ix_restore_requests_backup_id", "backup_id"),
    )

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    backup_id: Mapped[UUID] = mapped_column(Uuid)
    requested_by: Mapped[UUID] = mapped_column(ForeignKey("api_keys.id"), type_=Uuid)
    justification: Mapped[str] = mapped_column(String(2000))
    status: Mapped[RestoreStatus] = mapped_column(enum_column(RestoreStatus, 20))
    source_ip: Mapped[str | None] = mapped_column(String(45))
    mfa_verified: Mapped[bool] = mapped_column(Boolean)
    denial_code: Mapped[str | None] = mapped_column(String(40))
    denial_rule: Mapped[str | None] = mapped_column(String(100))
    failure_reason: Mapped[str | None] = mapped_column(String(40))
    approved_by: Mapped[UUID | None] = mapped_column(Uuid)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejected_by: Mapped[UUID | None] = mapped_column(Uuid)
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejection_reason: Mapped[str | None] = mapped_column(String(1000))
    token_hash: Mapped[str | None] = mapped_column(String(64))
    token_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
