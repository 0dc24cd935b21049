from datetime import datetime
from uuid import UUID

from sqlalchemy import Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.infrastructure.db.base import Base, UTCDateTime


class IncidentLevelChange(Base):
    """History of incident level changes (the current level is in ``system_state``): by a
    person (``actor_id``), by an alert (``alert_id``), or on the host (neither)."""

    __tablename__ = "incident_level_changes"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    from_level: Mapped[int] = mapped_column(Integer)
    to_level: Mapped[int] = mapped_column(Integer)
    stored_from_level: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(1000))
    actor_id: Mapped[UUID | None] = mapped_column(Uuid)
    alert_id: Mapped[UUID | None] = mapped_column(Uuid)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
