"""Raising an alert inside the transaction of the audit entry that triggered it (SPEC §13.2).

A first trigger of a rule about a subject opens an alert (``ALERT_TRIGGER``, a webhook
notification); a repeat while it is open raises its ``count`` and ``last_seen_at``. Either
way the incident level is raised to the rule's level when that is higher — never lowered —
and ``last_alert_at`` moves, which keeps level 1 from reverting while alerts keep coming.

The caller holds the audit chain head lock (the triggering entry was just appended), so
alerts are raised one at a time across every replica: at most one open alert per rule and
subject needs no retry loop (the partial unique index is the backstop).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from ssbg.domain.alerts import AlertStatus
from ssbg.domain.audit_chain import ChainedEntry, format_timestamp
from ssbg.domain.audit_events import AuditEvent, alert_resource
from ssbg.domain.detection import Rule
from ssbg.domain.enums import AuditAction
from ssbg.domain.errors import TamperedRow
from ssbg.infrastructure.db.models import Alert, SystemState
from ssbg.services.audit_service import AuditTrail
from ssbg.services.incident_service import LevelChange, change_level, effective_level
from ssbg.services.notifications import Notifications
from ssbg.services.unit_of_work import UnitOfWork


def alert_payload(alert: Alert, status: AlertStatus) -> dict[str, Any]:
    """The alert as the API and the webhook show it (SPEC §13.2), ``status`` effective."""

    def at(value: datetime | None) -> str | None:
        return format_timestamp(value) if value is not None else None

    return {
        "alert_id": str(alert.id),
        "rule_id": alert.rule_id,
        "severity": alert.severity.value,
        "status": status.value,
        "subject": alert.subject,
        "triggered_at": at(alert.triggered_at),
        "last_seen_at": at(alert.last_seen_at),
        "count": alert.count,
        "context": alert.context,
        "incident_level_applied": alert.incident_level_applied,
        "acknowledged_by": str(alert.acknowledged_by) if alert.acknowledged_by else None,
        "acknowledged_at": at(alert.acknowledged_at),
        "resolved_by": str(alert.resolved_by) if alert.resolved_by else None,
        "resolved_at": at(alert.resolved_at),
        "note": alert.note,
    }


@dataclass(frozen=True, slots=True)
class AlertRaiser:
    trail: AuditTrail
    notifications: Notifications

    async def raise_alert(
        self,
        tx: UnitOfWork,
        rule: Rule,
        subject: str,
        context: dict[str, Any],
        trigger: ChainedEntry,
    ) -> Alert:
        now = trigger.fields.occurred_at
        context = {**context, "trigger_sequence": trigger.fields.sequence_number}
        alert = await tx.alerts.open_for(rule.rule_id, subject)
        opened = alert is None
        if alert is None:
            alert = Alert(
                id=uuid4(),
                rule_id=rule.rule_id.value,
                severity=rule.severity,
                status=AlertStatus.NEW,
                subject=subject,
                triggered_at=now,
                last_seen_at=now,
                count=1,
                context=context,
            )
            tx.alerts.add(alert)
        else:
            alert.count += 1
            alert.last_seen_at = now
            alert.context = context
        try:
            state: SystemState | None = await tx.system_state.get(for_update=True)
        except TamperedRow:
            # The incident state itself was changed behind the gateway: every request that
            # reads it already fails closed; the alert is raised, the level cannot be.
            state = None
            alert.context = {**alert.context, "incident_state": "TAMPERED"}
        raise_to = None
        if state is not None:
            if effective_level(state, now) < rule.level:
                raise_to = rule.level
                alert.incident_level_applied = int(raise_to)
            state.last_alert_at = now
        await tx.session.flush()
        if opened:
            await self.trail.append(
                tx,
                AuditEvent.by(
                    None,
                    AuditAction.ALERT_TRIGGER,
                    alert_resource(alert.id),
                    rule_id=alert.rule_id,
                    severity=alert.severity.value,
                    subject=subject,
                    title=rule.title,
                    context=context,
                ),
            )
            self.notifications.enqueue(
                tx, AuditAction.ALERT_TRIGGER, "alert", alert_payload(alert, AlertStatus.NEW)
            )
        if state is not None and raise_to is not None:
            await change_level(
                tx,
                self.trail,
                self.notifications,
                state,
                LevelChange(
                    raise_to,
                    f"Alert {alert.rule_id}: {rule.title} ({subject})",
                    now,
                    alert_id=alert.id,
                ),
            )
        return alert
