"""The web console's overview (SPEC §13.5): what the gateway holds and how it is, read in one
transaction, each part only for a role that may read it over the API.

| part | shown with |
|---|---|
| incident level and what it blocks | ``INCIDENT_READ`` |
| open alerts by severity | ``ALERT_READ`` |
| backups by status and classification, bytes stored, per day | ``BACKUP_READ`` (operators: own) |
| restores per day | ``RESTORE_REQUEST`` |
| audit head and the last validation | ``AUDIT_READ`` |
| key versions | ``KEY_READ`` |

At incident level 3 (lockdown) a part is shown only if its permission stays open to
investigators (``allowed_in_lockdown``), as the API answers 423 to the rest.

The counts are aggregates for display, read without loading (and so without checking the
seal of) every row: nothing is decided on them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from ssbg.domain.alerts import AlertSeverity
from ssbg.domain.enums import AuditAction, BackupStatus, Classification
from ssbg.domain.identity import Actor
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.permissions import Permission, allowed_in_lockdown, is_allowed
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import AuditLogEntry
from ssbg.repositories.backups_repository import BackupTally
from ssbg.services.backups.reads import viewer_of
from ssbg.services.incident_service import effective_level
from ssbg.services.keys import KeyService
from ssbg.services.keys.inventory import KeyView
from ssbg.services.unit_of_work import AppDatabase

ACTIVITY_DAYS = 14
STORED_STATUSES = frozenset({BackupStatus.ACTIVE, BackupStatus.QUARANTINED})


@dataclass(frozen=True)
class BackupSummary:
    by_status: dict[BackupStatus, int]
    by_classification: dict[Classification, int]
    stored_bytes: int  # ciphertext of ACTIVE and QUARANTINED backups

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


@dataclass(frozen=True)
class AuditSummary:
    head_sequence: int
    head_hash: str
    last_validation: AuditLogEntry | None


@dataclass(frozen=True)
class Activity:
    """Backups (and, for admins, restore requests) per UTC day, oldest day first."""

    days: list[date]
    backups: list[int]
    restores: list[int] | None


@dataclass(frozen=True)
class Overview:
    backups: BackupSummary | None = None
    activity: Activity | None = None
    incident_level: IncidentLevel | None = None
    alerts: dict[AlertSeverity, int] | None = None
    audit: AuditSummary | None = None
    keys: Sequence[KeyView] | None = None


def activity_days(now: datetime, days: int = ACTIVITY_DAYS) -> list[datetime]:
    """The UTC midnights that start the last ``days`` days, today's last."""
    today = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
    return [today - timedelta(days=back) for back in range(days - 1, -1, -1)]


class ConsoleOverviewService:
    def __init__(self, db: AppDatabase, clock: Clock, keys: KeyService) -> None:
        self._db = db
        self._clock = clock
        self._keys = keys

    async def open_alerts(self) -> dict[AlertSeverity, int]:
        """Open alerts by severity (for a caller already allowed ``ALERT_READ``)."""
        async with self._db.transaction(write=False) as tx:
            return await tx.alerts.count_open_by_severity()

    async def overview(self, actor: Actor) -> Overview:
        now = self._clock.now()
        day_starts = activity_days(now)
        viewer = viewer_of(actor)
        async with self._db.transaction(write=False) as tx:
            level = effective_level(await tx.system_state.get(), now)

            def may(permission: Permission) -> bool:
                if level is IncidentLevel.LOCKDOWN and not allowed_in_lockdown(permission):
                    return False
                return is_allowed(actor.role, permission)

            backups = activity = None
            if may(Permission.BACKUP_READ):
                backups = summary_of(await tx.backups.summary_visible(viewer))
                activity = Activity(
                    [start.date() for start in day_starts],
                    await tx.backups.count_visible_per_day(viewer, day_starts),
                    await tx.restores.count_per_day(day_starts)
                    if may(Permission.RESTORE_REQUEST)
                    else None,
                )
            alerts = None
            if may(Permission.ALERT_READ):
                alerts = await tx.alerts.count_open_by_severity()
            audit = None
            if may(Permission.AUDIT_READ):
                head = await tx.audit.get_head()
                last = await tx.audit.last_entry_with_action(AuditAction.AUDIT_VALIDATE.value)
                audit = AuditSummary(head.sequence_number, head.entry_hash, last)
        return Overview(
            backups=backups,
            activity=activity,
            incident_level=level if may(Permission.INCIDENT_READ) else None,
            alerts=alerts,
            audit=audit,
            keys=await self._keys.list_keys() if may(Permission.KEY_READ) else None,
        )


def summary_of(tallies: Sequence[BackupTally]) -> BackupSummary:
    by_status = dict.fromkeys(BackupStatus, 0)
    by_classification = dict.fromkeys(Classification, 0)
    stored = 0
    for tally in tallies:
        by_status[tally.status] += tally.count
        by_classification[tally.classification] += tally.count
        if tally.status in STORED_STATUSES:
            stored += tally.encrypted_bytes
    return BackupSummary(by_status, by_classification, stored)
