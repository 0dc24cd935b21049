"""Query values that cross layers: filters, cursors and who is reading.

Routes build them from the request, services pass them on, repositories turn them into SQL;
none of them knows how the others work.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ssbg.domain.enums import BackupStatus, Classification


@dataclass(frozen=True, slots=True)
class BackupViewer:
    """Who is reading: ``sees_all`` for reviewers and admins, else only ``key_id``'s own."""

    key_id: UUID
    sees_all: bool


@dataclass(frozen=True, slots=True)
class BackupFilters:
    classification: Classification | None = None
    source_system: str | None = None
    status: BackupStatus | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class BackupCursor:
    """A position in the listing order (newest first): the last row of the previous page."""

    created_at: datetime
    backup_id: UUID


@dataclass(frozen=True, slots=True)
class AuditEntryFilters:
    action: str | None = None
    result: str | None = None
    actor_id: UUID | None = None
    resource: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertFilters:
    """``status`` is the effective status (``ESCALATED`` includes ``NEW`` alerts older than
    the escalation delay ``escalated_before`` marks)."""

    status: str | None = None
    severity: str | None = None
    rule_id: str | None = None


@dataclass(frozen=True, slots=True)
class AlertCursor:
    """A position in the alert listing (newest first): the last row of the previous page."""

    triggered_at: datetime
    alert_id: UUID


@dataclass(frozen=True, slots=True)
class RestoreCursor:
    """A position in the restore listing (newest first): the last row of the previous page."""

    created_at: datetime
    restore_id: UUID
