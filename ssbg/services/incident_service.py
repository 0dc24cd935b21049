"""The incident level: the gateway-wide security posture every replica reads (SPEC §5, §8).

The stored level lives in ``system_state``; the *effective* level is computed from stored
timestamps whenever it is read (level 1 reverts by itself), so no timer process is needed and
every replica agrees.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import INCIDENT_RESOURCE, AuditEvent
from ssbg.domain.enums import AuditAction
from ssbg.domain.identity import Actor
from ssbg.domain.incident import (
    IncidentLevel,
    auto_revert_at,
    check_incident_change,
    effective_incident_level,
)
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import IncidentLevelChange
from ssbg.services.audit_service import AuditTrail
from ssbg.services.notifications import Notifications
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

HISTORY_LENGTH = 20


@dataclass(frozen=True)
class IncidentStatus:
    level: IncidentLevel
    stored_level: IncidentLevel
    reason: str | None
    changed_at: datetime | None
    changed_by: UUID | None
    last_alert_at: datetime | None
    auto_revert_at: datetime | None
    history: Sequence[IncidentLevelChange]


class IncidentService:
    def __init__(
        self, db: AppDatabase, trail: AuditTrail, clock: Clock, notifications: Notifications
    ) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock
        self._notifications = notifications

    async def get_status(self) -> IncidentStatus:
        async with self._db.transaction(write=False) as tx:
            return await self._status(tx)

    async def set_level(self, actor: Actor, level: IncidentLevel, reason: str) -> IncidentStatus:
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            state = await tx.system_state.get(for_update=True)
            stored = IncidentLevel(state.incident_level)
            current = effective_incident_level(
                state.incident_level, state.incident_changed_at, state.last_alert_at, now
            )
            check_incident_change(current, level)
            tx.incidents.add_change(
                IncidentLevelChange(
                    id=uuid4(),
                    from_level=int(current),
                    to_level=int(level),
                    stored_from_level=int(stored),
                    reason=reason,
                    actor_id=actor.key_id,
                    changed_at=now,
                )
            )
            state.incident_level = int(level)
            state.incident_reason = reason
            state.incident_changed_at = now
            state.incident_changed_by = actor.key_id
            details: dict[str, Any] = {
                "from_level": int(current),
                "to_level": int(level),
                "reason": reason,
                "actor_id": str(actor.key_id),
            }
            if stored != current:
                details["auto_reverted_from"] = int(stored)
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.INCIDENT_LEVEL_CHANGE,
                    INCIDENT_RESOURCE,
                    **details,
                ),
            )
            self._notifications.enqueue(
                tx,
                AuditAction.INCIDENT_LEVEL_CHANGE,
                "incident",
                {**details, "changed_at": format_timestamp(now), "alert_id": None},
            )
            return await self._status(tx)

    async def _status(self, tx: UnitOfWork) -> IncidentStatus:
        state = await tx.system_state.get()
        now = self._clock.now()
        return IncidentStatus(
            level=effective_incident_level(
                state.incident_level, state.incident_changed_at, state.last_alert_at, now
            ),
            stored_level=IncidentLevel(state.incident_level),
            reason=state.incident_reason,
            changed_at=state.incident_changed_at,
            changed_by=state.incident_changed_by,
            last_alert_at=state.last_alert_at,
            auto_revert_at=auto_revert_at(
                state.incident_level, state.incident_changed_at, state.last_alert_at
            ),
            history=await tx.incidents.recent_changes(HISTORY_LENGTH),
        )
