"""The incident level: the gateway-wide security posture every replica reads (SPEC §5, §8,
§13.2).

The stored level lives in ``system_state``; the *effective* level is computed from stored
timestamps whenever it is read (level 1 reverts by itself), so no timer process is needed and
every replica agrees. Three ways change it, each through :func:`change_level` (history row,
state, ``INCIDENT_LEVEL_CHANGE`` entry and webhook notification, in the caller's transaction):

* a super_admin over the API (:meth:`IncidentService.set_level`; never out of level 3);
* an alert, which only ever raises it (``ssbg.services.detection``);
* the host, with the key password (:meth:`IncidentService.release`, ``ssbg incident release``),
  the only way out of level 3.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import INCIDENT_RESOURCE, AuditEvent, api_key_resource
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import IncidentLockdown
from ssbg.domain.identity import Actor
from ssbg.domain.incident import (
    IncidentLevel,
    auto_revert_at,
    check_incident_change,
    check_release,
    effective_incident_level,
)
from ssbg.domain.permissions import Permission, allowed_in_lockdown
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import IncidentLevelChange, SystemState
from ssbg.services.audit_service import AuditTrail
from ssbg.services.notifications import Notifications
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

HISTORY_LENGTH = 20
HOST_ACTOR_ROLE = "cli"


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


@dataclass(frozen=True, slots=True)
class LevelChange:
    """One change of the incident level: by ``actor`` (a person over the API), for
    ``alert_id`` (an alert; actor ``system``), or on the host (neither)."""

    target: IncidentLevel
    reason: str
    now: datetime
    actor: Actor | None = None
    alert_id: UUID | None = None

    @property
    def on_host(self) -> bool:
        return self.actor is None and self.alert_id is None


def effective_level(state: SystemState, now: datetime) -> IncidentLevel:
    return effective_incident_level(
        state.incident_level, state.incident_changed_at, state.last_alert_at, now
    )


async def change_level(
    tx: UnitOfWork,
    trail: AuditTrail,
    notifications: Notifications,
    state: SystemState,
    change: LevelChange,
) -> None:
    """Move the incident level of the locked ``state`` row (checked by the caller)."""
    stored = IncidentLevel(state.incident_level)
    current = effective_level(state, change.now)
    actor_id = change.actor.key_id if change.actor else None
    tx.incidents.add_change(
        IncidentLevelChange(
            id=uuid4(),
            from_level=int(current),
            to_level=int(change.target),
            stored_from_level=int(stored),
            reason=change.reason,
            actor_id=actor_id,
            alert_id=change.alert_id,
            changed_at=change.now,
        )
    )
    state.incident_level = int(change.target)
    state.incident_reason = change.reason
    state.incident_changed_at = change.now
    state.incident_changed_by = actor_id
    await tx.session.flush()  # the entry's level is read from the stored state
    details: dict[str, Any] = {
        "from_level": int(current),
        "to_level": int(change.target),
        "reason": change.reason,
        "actor_id": str(actor_id) if actor_id else None,
        "alert_id": str(change.alert_id) if change.alert_id else None,
    }
    if stored != current:
        details["auto_reverted_from"] = int(stored)
    if change.on_host:
        event = AuditEvent(
            action=AuditAction.INCIDENT_LEVEL_CHANGE,
            resource=INCIDENT_RESOURCE,
            result=AuditResult.SUCCESS,
            actor_role=HOST_ACTOR_ROLE,
            details={**details, "via": "cli"},
        )
    else:  # a person, or the gateway itself for an alert
        event = AuditEvent.by(
            change.actor, AuditAction.INCIDENT_LEVEL_CHANGE, INCIDENT_RESOURCE, **details
        )
    await trail.append(tx, event)
    notifications.enqueue(
        tx,
        AuditAction.INCIDENT_LEVEL_CHANGE,
        "incident",
        {**details, "changed_at": format_timestamp(change.now)},
    )


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

    async def current_level(self) -> IncidentLevel:
        async with self._db.transaction(write=False) as tx:
            return effective_level(await tx.system_state.get(), self._clock.now())

    async def guard(
        self, actor: Actor, permission: Permission, level: IncidentLevel | None = None
    ) -> None:
        """At level 3 (LOCKDOWN) refuse what ``permission`` allows unless investigators need
        it (``LOCKDOWN_PERMISSIONS``): 423, recorded as ``AUTHZ_DENY``. ``level``: the level
        the caller already read in this request (read here when ``None``)."""
        if allowed_in_lockdown(permission):
            return
        if level is None:
            level = await self.current_level()
        if level < IncidentLevel.LOCKDOWN:
            return
        async with self._db.transaction(write=True) as tx:
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.AUTHZ_DENY,
                    api_key_resource(actor.key_id),
                    AuditResult.DENIED,
                    permission=permission.value,
                    reason=IncidentLockdown.code,
                ),
            )
        raise IncidentLockdown(
            "The gateway is in incident lockdown: only health, identity, the incident state, "
            "alerts and the audit log can be read.",
            {"rule": "INCIDENT", "reason_category": "INCIDENT_LOCKDOWN"},
        )

    async def set_level(self, actor: Actor, level: IncidentLevel, reason: str) -> IncidentStatus:
        """A super_admin's change over the API: any level up, down only below 3."""
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            state = await tx.lock_system_state()
            check_incident_change(effective_level(state, now), level)
            await change_level(
                tx,
                self._trail,
                self._notifications,
                state,
                LevelChange(level, reason, now, actor=actor),
            )
            return await self._status(tx)

    async def release(self, level: IncidentLevel, reason: str) -> IncidentStatus:
        """Lower the level on the host (``ssbg incident release``: the caller has proven the
        key password); the only way out of level 3 (LOCKDOWN)."""
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            state = await tx.lock_system_state()
            check_release(effective_level(state, now), level)
            await change_level(
                tx, self._trail, self._notifications, state, LevelChange(level, reason, now)
            )
            return await self._status(tx)

    async def _status(self, tx: UnitOfWork) -> IncidentStatus:
        state = await tx.system_state.get()
        return IncidentStatus(
            level=effective_level(state, self._clock.now()),
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
