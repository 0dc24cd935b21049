"""Reading backups on behalf of a caller: one record, its status history, a page of them.

Operators see only their own backups; what a caller may see is a :class:`BackupViewer`
built from its permissions, and the repository's one visibility statement applies it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from ssbg.domain.errors import BackupNotFound
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission, is_allowed
from ssbg.domain.queries import BackupCursor, BackupFilters, BackupViewer
from ssbg.infrastructure.db.models import BackupMetadata, BackupStatusTransition
from ssbg.services.unit_of_work import AppDatabase

MAX_PAGE = 100


@dataclass(frozen=True)
class BackupPage:
    items: Sequence[BackupMetadata]
    next_cursor: BackupCursor | None


@dataclass(frozen=True)
class BackupStatusView:
    backup: BackupMetadata
    transitions: Sequence[BackupStatusTransition]


def viewer_of(actor: Actor) -> BackupViewer:
    return BackupViewer(
        key_id=actor.key_id, sees_all=is_allowed(actor.role, Permission.BACKUP_READ_ALL)
    )


@dataclass(frozen=True, slots=True)
class BackupReads:
    db: AppDatabase

    async def get_backup(self, actor: Actor, backup_id: UUID) -> BackupMetadata:
        async with self.db.transaction(write=False) as tx:
            backup = await tx.backups.get_visible_or_none(viewer_of(actor), backup_id)
        if backup is None:
            raise BackupNotFound()
        return backup

    async def get_status(self, actor: Actor, backup_id: UUID) -> BackupStatusView:
        async with self.db.transaction(write=False) as tx:
            backup = await tx.backups.get_visible_or_none(viewer_of(actor), backup_id)
            if backup is None:
                raise BackupNotFound()
            transitions = await tx.backups.list_transitions(backup_id)
        return BackupStatusView(backup=backup, transitions=transitions)

    async def list_backups(
        self,
        actor: Actor,
        filters: BackupFilters,
        after: BackupCursor | None,
        limit: int,
    ) -> BackupPage:
        limit = max(1, min(limit, MAX_PAGE))
        async with self.db.transaction(write=False) as tx:
            rows = await tx.backups.list_visible(viewer_of(actor), filters, after, limit + 1)
        items = rows[:limit]
        next_cursor = (
            BackupCursor(created_at=items[-1].created_at, backup_id=items[-1].id)
            if len(rows) > limit
            else None
        )
        return BackupPage(items=items, next_cursor=next_cursor)
