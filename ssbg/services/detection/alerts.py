"""Alerts as people handle them (SPEC §13.2): read, acknowledge, investigate, resolve — each
step audited in its transaction — and the escalation sweep.

An alert left ``NEW`` past ``SSBG_ALERT_ESCALATION_SECONDS`` *is* ``ESCALATED`` as soon as
that time has passed (the effective status is computed when read), and so is one triggered
after now — by a clock that has gone back since (``ssbg.domain.alerts.Overdue``); the
sweep, run by every replica, records the escalation once per alert (``ALERT_ESCALATE`` and
the webhook notification) under the row's lock.
"""

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import structlog

from ssbg.domain.alerts import (
    AlertStatus,
    AlertStep,
    Overdue,
    effective_alert_status,
    next_alert_status,
)
from ssbg.domain.audit_events import AuditEvent, alert_resource
from ssbg.domain.enums import AuditAction
from ssbg.domain.errors import NotFound
from ssbg.domain.identity import Actor
from ssbg.domain.queries import AlertCursor, AlertFilters
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import Alert
from ssbg.services.audit_service import AuditTrail
from ssbg.services.detection.raising import alert_payload
from ssbg.services.notifications import Notifications
from ssbg.services.unit_of_work import AppDatabase

log = structlog.get_logger("ssbg.alerts")

STEP_ACTIONS = {
    AlertStep.ACKNOWLEDGE: AuditAction.ALERT_ACK,
    AlertStep.INVESTIGATE: AuditAction.ALERT_INVESTIGATE,
    AlertStep.RESOLVE: AuditAction.ALERT_RESOLVE,
}
SWEEP_BATCH = 100


class AlertNotFound(NotFound):
    default_message = "Alert not found."


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert and its effective status."""

    alert: Alert
    status: AlertStatus


@dataclass(frozen=True, slots=True)
class AlertPage:
    items: list[AlertView]
    next_cursor: AlertCursor | None


@dataclass(frozen=True, slots=True)
class AlertService:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    notifications: Notifications
    escalation: timedelta

    def view(self, alert: Alert) -> AlertView:
        status = effective_alert_status(
            alert.status, alert.triggered_at, self.clock.now(), self.escalation
        )
        return AlertView(alert, status)

    async def list_alerts(
        self, filters: AlertFilters, after: AlertCursor | None, limit: int
    ) -> AlertPage:
        overdue = Overdue.at(self.clock.now(), self.escalation)
        async with self.db.transaction(write=False) as tx:
            alerts = await tx.alerts.list(filters, overdue, after, limit + 1)
        items = [self.view(alert) for alert in alerts[:limit]]
        more = len(alerts) > limit
        last = items[-1].alert if items else None
        cursor = AlertCursor(last.triggered_at, last.id) if more and last else None
        return AlertPage(items, cursor)

    async def get_alert(self, alert_id: UUID) -> AlertView:
        async with self.db.transaction(write=False) as tx:
            alert = await tx.alerts.get_or_none(alert_id)
        if alert is None:
            raise AlertNotFound()
        return self.view(alert)

    async def take_step(
        self, actor: Actor, alert_id: UUID, step: AlertStep, note: str | None
    ) -> AlertView:
        """Acknowledge, investigate or resolve (409 ``INVALID_STATE_TRANSITION`` otherwise)."""
        now = self.clock.now()
        async with self.db.transaction(write=True) as tx:
            # Lock order: the audit head, then the alert — as an append that raises the same
            # alert again (``AlertRaiser``) takes them.
            await tx.lock_audit_head()
            alert = await tx.alerts.get_or_none(alert_id, for_update=True)
            if alert is None:
                raise AlertNotFound()
            current = self.view(alert).status
            target = next_alert_status(current, step)
            alert.status = target
            if note is not None:
                alert.note = note
            if step is AlertStep.ACKNOWLEDGE:
                alert.acknowledged_by, alert.acknowledged_at = actor.key_id, now
            elif step is AlertStep.INVESTIGATE:
                alert.investigating_by, alert.investigating_at = actor.key_id, now
            else:
                alert.resolved_by, alert.resolved_at = actor.key_id, now
            await tx.session.flush()
            await self.trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    STEP_ACTIONS[step],
                    alert_resource(alert.id),
                    rule_id=alert.rule_id,
                    from_status=current.value,
                    to_status=target.value,
                    note=note,
                ),
            )
            return AlertView(alert, target)

    async def escalate_overdue(self) -> list[UUID]:
        """Record the escalation of every ``NEW`` alert past the delay (once each, whichever
        replica's sweep gets there first)."""
        now = self.clock.now()
        async with self.db.transaction(write=False) as tx:
            overdue = await tx.alerts.overdue_for_escalation(
                Overdue.at(now, self.escalation), SWEEP_BATCH
            )
        escalated: list[UUID] = []
        for alert_id in overdue:
            async with self.db.transaction(write=True) as tx:
                await tx.lock_audit_head()  # lock order: head, then the alert row
                alert = await tx.alerts.get_or_none(alert_id, for_update=True)
                # Still NEW and overdue (another replica may have recorded it meanwhile).
                if alert is None or alert.status is not AlertStatus.NEW:
                    continue
                alert.status = AlertStatus.ESCALATED
                alert.escalated_at = now
                await tx.session.flush()
                await self.trail.append(
                    tx,
                    AuditEvent.by(
                        None,
                        AuditAction.ALERT_ESCALATE,
                        alert_resource(alert.id),
                        rule_id=alert.rule_id,
                        severity=alert.severity.value,
                        # Zero for an alert triggered by a clock ahead of ours.
                        unacknowledged_seconds=max(
                            0, int((now - alert.triggered_at).total_seconds())
                        ),
                    ),
                )
                self.notifications.enqueue(
                    tx,
                    AuditAction.ALERT_ESCALATE,
                    "alert",
                    alert_payload(alert, AlertStatus.ESCALATED),
                )
            escalated.append(alert_id)
        if escalated:
            log.warning("alerts_escalated", count=len(escalated))
        return escalated

    async def run_periodically(self, interval_seconds: float) -> None:
        """The escalation sweep, until cancelled; a failed round is logged and tried again."""
        while True:
            try:
                await self.escalate_overdue()
            except Exception as exc:  # the next round tries again; nothing is lost
                log.error("alert_escalation_failed", error=type(exc).__name__)
            await asyncio.sleep(interval_seconds)
