from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.domain.enums import BackupStatus, Classification, Compression
from ssbg.infrastructure.db.base import Base, Sealed, UTCDateTime, enum_column


class BackupMetadata(Sealed, Base):
    """One backup: what was stored, where, under which key version, and its lifecycle status.

    Sizes, checksums and ``completed_at`` are set when the ingest completes (``ACTIVE``).
    ``lease_expires_at`` is renewed by the process streaming a ``PROCESSING`` backup; a lapsed
    lease means that process died and recovery may fail the record. ``cleanup_pending`` marks
    objects a failed or deleted backup still has in the store, to be removed by a later sweep.
    """

    __tablename__ = "backup_metadata"
    __table_args__ = (
        UniqueConstraint("created_by", "idempotency_key", name="uq_backup_metadata_idempotency"),
        Index("ix_backup_metadata_created_at_id", "created_at", "id"),
        Index("ix_backup_metadata_created_by_created_at_id", "created_by", "created_at", "id"),
        Index("ix_backup_metadata_status_lease", "status", "lease_expires_at"),
        Index("ix_backup_metadata_key_version", "key_version"),
    )

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[BackupStatus] = mapped_column(enum_column(BackupStatus, 20))
    classification: Mapped[Classification] = mapped_column(enum_column(Classification, 20))
    source_system: Mapped[str] = mapped_column(String(200))
    original_filename: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000))
    content_type: Mapped[str] = mapped_column(String(255))
    original_size: Mapped[int | None] = mapped_column(BigInteger)
    encrypted_size: Mapped[int | None] = mapped_column(BigInteger)
    checksum_plaintext: Mapped[str | None] = mapped_column(String(128))
    checksum_ciphertext: Mapped[str | None] = mapped_column(String(128))
    key_version: Mapped[str] = mapped_column(ForeignKey("key_versions.version"), type_=String(16))
    format_version: Mapped[int] = mapped_column(Integer)
    segment_size: Mapped[int] = mapped_column(Integer)
    storage_backend: Mapped[str] = mapped_column(String(16))
    storage_ref: Mapped[str] = mapped_column(String(300))
    wrapped_dek_ref: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[UUID] = mapped_column(ForeignKey("api_keys.id"), type_=Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure_reason: Mapped[str | None] = mapped_column(String(40))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cleanup_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    compression: Mapped[Compression] = mapped_column(
        enum_column(Compression, 16), default=Compression.NONE, server_default="none"
    )
    stored_size: Mapped[int | None] = mapped_column(BigInteger)
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_verification_result: Mapped[str | None] = mapped_column(String(16))
    legal_hold_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    legal_hold_by: Mapped[UUID | None] = mapped_column(Uuid)
    legal_hold_reason: Mapped[str | None] = mapped_column(String(2000))

    @property
    def held(self) -> bool:
        return self.legal_hold_at is not None


@event.listens_for(BackupMetadata, "init")
def _python_defaults(_target: BackupMetadata, _args: object, kwargs: dict[str, object]) -> None:
    # The seal is computed before the INSERT applies column defaults: give the object its
    # sealed default now, so the seal written is the seal read back.
    kwargs.setdefault("compression", Compression.NONE)


class BackupStatusTransition(Base):
    """One lifecycle move of a backup, numbered per backup from 1.

    The first row is the creation, ``None → PROCESSING``.
    """

    __tablename__ = "backup_status_transitions"
    __table_args__ = (
        UniqueConstraint("backup_id", "sequence", name="uq_backup_status_transitions_sequence"),
    )

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    backup_id: Mapped[UUID] = mapped_column(ForeignKey("backup_metadata.id"), type_=Uuid)
    sequence: Mapped[int] = mapped_column(Integer)
    from_status: Mapped[BackupStatus | None] = mapped_column(enum_column(BackupStatus, 20))
    to_status: Mapped[BackupStatus] = mapped_column(enum_column(BackupStatus, 20))
    reason: Mapped[str | None] = mapped_column(String(200))
    actor_id: Mapped[UUID | None] = mapped_column(Uuid)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
