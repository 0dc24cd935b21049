from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.domain.alerts import AlertSeverity, AlertStatus
from ssbg.infrastructure.db.base import Base, JSONType, Sealed, UTCDateTime, enum_column

OPEN_ALERT = text("status <> 'RESOLVED'")


class Alert(Sealed, Base):
    """An alert raised by a detection rule (SPEC §13.2); at most one open per rule and subject.

    ``status`` is the stored status (``NEW`` until the escalation sweep records
    ``ESCALATED``); readers compute the effective one (``ssbg.domain.alerts``).
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_open_rule_subject",
            "rule_id",
            "subject",
            unique=True,
            postgresql_where=OPEN_ALERT,
            sqlite_where=OPEN_ALERT,
        ),
        Index("ix_alerts_status_triggered_at", "status", "triggered_at"),
        Index("ix_alerts_triggered_at", "triggered_at"),
    )

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(4))
    severity: Mapped[AlertSeverity] = mapped_column(enum_column(AlertSeverity, 10))
    status: Mapped[AlertStatus] = mapped_column(enum_column(AlertStatus, 20))
    subject: Mapped[str] = mapped_column(String(200))
    triggered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType)
    incident_level_applied: Mapped[int | None] = mapped_column(Integer)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[UUID | None] = mapped_column(Uuid)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    investigating_by: Mapped[UUID | None] = mapped_column(Uuid)
    investigating_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[UUID | None] = mapped_column(Uuid)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(2000))
