from datetime import datetime
from uuid import UUID

from sqlalchemy import CheckConstraint, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.infrastructure.db.base import Base, Sealed, UTCDateTime


class SystemState(Sealed, Base):
    """Gateway-wide state shared by every replica (one row)."""

    __tablename__ = "system_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    initialized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bootstrap_key_id: Mapped[UUID | None] = mapped_column(Uuid)
    incident_level: Mapped[int] = mapped_column(Integer)
    incident_reason: Mapped[str | None] = mapped_column(String(1000))
    incident_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    incident_changed_by: Mapped[UUID | None] = mapped_column(Uuid)
    last_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
