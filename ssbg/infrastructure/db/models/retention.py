from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.infrastructure.db.base import Base, JSONType, Sealed, UTCDateTime


class RetentionRule(Sealed, Base):
    """One retention rule (SPEC §13.4): which backups it matches (source-system globs and
    classifications, an empty list meaning all) and restic's keep counts. Sealed: a database
    writer must not be able to make a rule keep less than the owner set."""

    __tablename__ = "retention_rules"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    source_systems: Mapped[list[str]] = mapped_column(JSONType)
    classifications: Mapped[list[str]] = mapped_column(JSONType)
    keep_last: Mapped[int] = mapped_column(Integer)
    keep_daily: Mapped[int] = mapped_column(Integer)
    keep_weekly: Mapped[int] = mapped_column(Integer)
    keep_monthly: Mapped[int] = mapped_column(Integer)
    min_age_days: Mapped[int] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[UUID | None] = mapped_column(Uuid)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[UUID | None] = mapped_column(Uuid)


class VerifyJob(Base):
    """A verification at rest over a selection of backups (``POST /admin/verify``), resumable:
    backups are verified in ``(created_at, id)`` order and ``cursor_*`` is the last one done,
    so a job whose replica died (``lease_expires_at`` lapsed) is taken up where it stopped.
    Progress only: each backup's own result is on its (sealed) metadata row and in the audit
    log, so this row grants nothing."""

    __tablename__ = "verify_jobs"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    selection: Mapped[dict[str, Any]] = mapped_column(JSONType)
    total: Mapped[int] = mapped_column(Integer)
    verified: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    cursor_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cursor_id: Mapped[UUID | None] = mapped_column(Uuid)
    created_by: Mapped[UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
