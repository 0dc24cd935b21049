from datetime import datetime
from typing import Annotated
from uuid import UUID

from annotated_types import Interval
from pydantic import BaseModel, StrictInt, StringConstraints

from ssbg.api.schemas.common import INTEGRAL, StrictInput
from ssbg.domain.incident import IncidentLevel
from ssbg.infrastructure.db.models import IncidentLevelChange
from ssbg.services.incident_service import IncidentStatus

Reason = Annotated[str, StringConstraints(strict=True, min_length=3, max_length=1000)]


class IncidentLevelSet(StrictInput):
    level: Annotated[StrictInt, Interval(ge=0, le=3), INTEGRAL]
    reason: Reason


class IncidentChangeOut(BaseModel):
    from_level: int
    to_level: int
    reason: str
    actor_id: UUID | None
    alert_id: UUID | None
    changed_at: datetime

    @classmethod
    def of(cls, change: IncidentLevelChange) -> "IncidentChangeOut":
        return cls(
            from_level=change.from_level,
            to_level=change.to_level,
            reason=change.reason,
            actor_id=change.actor_id,
            alert_id=change.alert_id,
            changed_at=change.changed_at,
        )


class IncidentOut(BaseModel):
    level: int
    name: str
    reason: str | None
    changed_at: datetime | None
    changed_by: UUID | None
    last_alert_at: datetime | None
    auto_revert_at: datetime | None
    history: list[IncidentChangeOut]

    @classmethod
    def of(cls, status: IncidentStatus) -> "IncidentOut":
        reverted = status.level != status.stored_level
        return cls(
            level=int(status.level),
            name=IncidentLevel(status.level).name,
            reason=None if reverted else status.reason,
            changed_at=status.changed_at,
            changed_by=status.changed_by,
            last_alert_at=status.last_alert_at,
            auto_revert_at=None if reverted else status.auto_revert_at,
            history=[IncidentChangeOut.of(change) for change in status.history],
        )
