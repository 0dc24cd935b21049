from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, StringConstraints

from ssbg.api.schemas.common import StrictInput
from ssbg.services.detection.alerts import AlertView

Note = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=2000)]


class AlertStepIn(StrictInput):
    """What the person handling the alert has to say (required to resolve)."""

    note: Note | None = None


class AlertResolveIn(StrictInput):
    """Resolving an alert says how it was resolved."""

    note: Note


class AlertOut(BaseModel):
    """An alert (SPEC §13.2); ``status`` is the effective one (``ESCALATED`` once a ``NEW``
    alert has waited past the escalation delay)."""

    alert_id: UUID
    rule_id: str
    severity: str
    status: str
    subject: str
    triggered_at: datetime
    last_seen_at: datetime
    count: int
    context: dict[str, Any]
    incident_level_applied: int | None
    acknowledged_by: UUID | None
    acknowledged_at: datetime | None
    resolved_by: UUID | None
    resolved_at: datetime | None
    note: str | None

    @classmethod
    def of(cls, view: AlertView) -> "AlertOut":
        alert = view.alert
        return cls(
            alert_id=alert.id,
            rule_id=alert.rule_id,
            severity=alert.severity.value,
            status=view.status.value,
            subject=alert.subject,
            triggered_at=alert.triggered_at,
            last_seen_at=alert.last_seen_at,
            count=alert.count,
            context=alert.context,
            incident_level_applied=alert.incident_level_applied,
            acknowledged_by=alert.acknowledged_by,
            acknowledged_at=alert.acknowledged_at,
            resolved_by=alert.resolved_by,
            resolved_at=alert.resolved_at,
            note=alert.note,
        )
