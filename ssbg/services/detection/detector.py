"""The detector: rules M1-M10 evaluated on each audit entry that can trigger them, in the
transaction that appends it (SPEC §9, §13.2), so an alert exists before the request that
caused it has answered.

:class:`~ssbg.services.audit_service.AuditTrail` calls :meth:`Detector.observe` after it has
inserted an entry whose action some rule watches (most entries: no rule, no query). The rule
definitions and thresholds are pure functions in :mod:`ssbg.domain.detection`; this module
only reads the counts they are decided on.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ssbg.domain.audit_chain import ChainedEntry, ChainedFields
from ssbg.domain.detection import (
    M1_WINDOW,
    M2_WINDOW,
    M7_WINDOW,
    M8_WINDOW,
    Rule,
    RuleId,
    m1_fires,
    m2_fires,
    m3_fires,
    m4_fires,
    m5_fires,
    m7_fires,
    m8_fires,
    rules_triggered_by,
    validation_failed,
)
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.services.detection.raising import AlertRaiser
from ssbg.services.unit_of_work import UnitOfWork

# Rules that count one action across the gateway in a window: (action, window, test, name).
_COUNTED: dict[RuleId, tuple[AuditAction, timedelta, Callable[[int], bool], str]] = {
    RuleId.M7: (AuditAction.RESTORE_FAILED, M7_WINDOW, m7_fires, "restore_failures"),
    RuleId.M8: (AuditAction.BACKUP_DELETE, M8_WINDOW, m8_fires, "deletions"),
}
SYSTEM_SUBJECT = "system"
AUDIT_SUBJECT = "audit"

Finding = tuple[str, dict[str, Any]]  # the alert's subject and context


@dataclass(frozen=True, slots=True)
class Detector:
    raiser: AlertRaiser
    business_hours: tuple[int, int]
    zone: ZoneInfo
    m3_min_bytes: int

    async def observe(self, tx: UnitOfWork, entry: ChainedEntry) -> None:
        for rule in rules_triggered_by(entry.fields.action):
            finding = await self._evaluate(tx, rule, entry.fields)
            if finding is not None:
                subject, context = finding
                await self.raiser.raise_alert(tx, rule, subject, context, entry)

    async def _evaluate(self, tx: UnitOfWork, rule: Rule, entry: ChainedFields) -> Finding | None:
        now = entry.occurred_at
        match rule.rule_id:
            case RuleId.M1:
                return await self._m1(tx, entry, now)
            case RuleId.M2:
                return await self._m2(tx, entry, now)
            case RuleId.M3:
                return await self._m3(tx, entry, now)
            case RuleId.M4:
                return await self._m4(tx, entry, now)
            case RuleId.M5:
                hour = now.astimezone(self.zone).hour
                if not m5_fires(self.business_hours, hour):
                    return None
                start, end = self.business_hours
                return _key_subject(entry), {
                    "local_hour": hour,
                    "business_hours": f"{start:02d}-{end:02d}",
                    "resource": entry.resource,
                }
            case RuleId.M6 | RuleId.M10:
                return self._tampering(rule, entry)
            case RuleId.M7 | RuleId.M8:
                action, window, fires, name = _COUNTED[rule.rule_id]
                count = await tx.detection.count_actions_since(action, now - window)
                if not fires(count):
                    return None
                return SYSTEM_SUBJECT, _window(count, window.seconds, name)
            case RuleId.M9:
                if entry.result != AuditResult.SUCCESS:
                    return None
                return entry.resource, {
                    "action": entry.action,
                    "actor_id": str(entry.actor_id) if entry.actor_id else None,
                    "name": entry.details.get("name"),
                }
        return None  # pragma: no cover - every rule is matched above

    @staticmethod
    async def _m1(tx: UnitOfWork, entry: ChainedFields, now: datetime) -> Finding | None:
        if entry.source_ip is None:
            return None
        failures = await tx.detection.count_actions_since(
            AuditAction.AUTH_FAILURE, now - M1_WINDOW, source_ip=entry.source_ip
        )
        if not m1_fires(failures):
            return None
        context = _window(failures, M1_WINDOW.seconds, "failures")
        return entry.source_ip, {"source_ip": entry.source_ip, **context}

    @staticmethod
    async def _m2(tx: UnitOfWork, entry: ChainedFields, now: datetime) -> Finding | None:
        if entry.actor_id is None:
            return None
        restores = await tx.restores.count_since(now - M2_WINDOW, requested_by=entry.actor_id)
        if not m2_fires(restores.count):
            return None
        return _key_subject(entry), _window(restores.count, M2_WINDOW.seconds, "restores")

    async def _m3(self, tx: UnitOfWork, entry: ChainedFields, now: datetime) -> Finding | None:
        restored = entry.details.get("verified_bytes")
        if not isinstance(restored, int) or restored < 0:
            return None
        today = now.date()
        await tx.detection.add_restored_bytes(today, restored)
        volume = await tx.detection.restore_volume(today)
        if not m3_fires(volume, self.m3_min_bytes):
            return None
        return SYSTEM_SUBJECT, {
            "day": today.isoformat(),
            "restored_bytes_today": volume.today_bytes,
            "trailing_daily_mean_bytes": int(volume.trailing_daily_mean),
            "trailing_restores": volume.trailing_restores,
        }

    @staticmethod
    async def _m4(tx: UnitOfWork, entry: ChainedFields, now: datetime) -> Finding | None:
        if entry.actor_id is None or entry.source_ip is None:
            return None
        elsewhere, here = await tx.detection.record_restore_address(
            entry.actor_id, entry.source_ip, now
        )
        if not m4_fires(elsewhere, here):
            return None
        return _key_subject(entry), {"source_ip": entry.source_ip, "resource": entry.resource}

    @staticmethod
    def _tampering(rule: Rule, entry: ChainedFields) -> Finding | None:
        if entry.action == AuditAction.TAMPERING_DETECTED:
            if rule.rule_id is not RuleId.M6:
                return None
            return entry.resource, {"evidence": "sealed row", "details": dict(entry.details)}
        partial, whole = validation_failed(entry.result, entry.details.get("full_chain"))
        if not (partial if rule.rule_id is RuleId.M6 else whole):
            return None
        return AUDIT_SUBJECT, {
            "evidence": "audit validation",
            "from_sequence": entry.details.get("from_sequence"),
            "to_sequence": entry.details.get("to_sequence"),
            "validation": entry.details.get("validation"),
            "via": entry.details.get("via"),
        }


def _key_subject(entry: ChainedFields) -> str:
    return str(entry.actor_id) if entry.actor_id is not None else SYSTEM_SUBJECT


def _window(count: int, seconds: int, name: str) -> dict[str, Any]:
    return {name: count, "window_seconds": seconds}
