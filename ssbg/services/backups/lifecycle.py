"""The one place a backup's status changes (SPEC §5).

:meth:`BackupLifecycle.try_move` checks the domain's transition table, compare-and-sets the
status, writes the ``backup_status_transitions`` row and appends the audit entry — all in the
caller's transaction, so they commit together or not at all. Ingest, deletion, restores (an
integrity failure quarantines) and recovery all go through it; nothing else calls
``change_status``.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import structlog

from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.backup_lifecycle import check_backup_transition
from ssbg.domain.enums import AuditAction, AuditResult, BackupFailureReason, BackupStatus
from ssbg.domain.errors import InvalidStateTransition, SsbgError, StorageUnavailable
from ssbg.domain.identity import Actor
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import BackupMetadata, BackupStatusTransition
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.infrastructure.storage.layout import backup_prefix
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

log = structlog.get_logger("ssbg.backups")


def new_transition(
    backup_id: UUID,
    sequence: int,
    from_status: BackupStatus | None,
    to_status: BackupStatus,
    actor: Actor | None,
    at: datetime,
    reason: str | None = None,
) -> BackupStatusTransition:
    return BackupStatusTransition(
        id=uuid4(),
        backup_id=backup_id,
        sequence=sequence,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        actor_id=actor.key_id if actor else None,
        at=at,
    )


@dataclass(frozen=True, slots=True)
class BackupLifecycle:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    store: ObjectStore

    async def try_move(
        self,
        tx: UnitOfWork,
        backup_id: UUID,
        current: BackupStatus,
        target: BackupStatus,
        actor: Actor | None,
        *,
        action: AuditAction = AuditAction.BACKUP_STATUS_CHANGE,
        result: AuditResult = AuditResult.SUCCESS,
        reason: str | None = None,
        values: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        lease_lapsed_before: datetime | None = None,
        preceding_events: Sequence[AuditEvent] = (),
    ) -> BackupMetadata | None:
        """Move a backup ``current → target`` inside ``tx``; ``None`` when another writer
        moved it first (or, with ``lease_lapsed_before``, when its lease has not lapsed).

        ``InvalidStateTransition`` for a move the state machine forbids. ``values`` are set
        with the status; ``preceding_events`` are appended just before the move's own entry.
        Audit appends come after the row update on purpose: every writer locks the backup row
        before the audit chain head, so two writers never wait on each other in a cycle.
        """
        check_backup_transition(current, target)
        now = self.clock.now()
        changed = await tx.backups.change_status(
            backup_id,
            current,
            lease_lapsed_before=lease_lapsed_before,
            status=target,
            updated_at=now,
            **(values or {}),
        )
        if changed is None:
            return None
        sequence = await tx.backups.next_transition_sequence(backup_id)
        tx.backups.add_transition(
            new_transition(backup_id, sequence, current, target, actor, now, reason)
        )
        await tx.backups.flush()
        for event in preceding_events:
            await self.trail.append(tx, event)
        await self.trail.append(
            tx,
            AuditEvent.by(
                actor,
                action,
                backup_resource(backup_id),
                result,
                from_status=current.value,
                to_status=target.value,
                reason=reason,
                **(details or {}),
            ),
        )
        return changed

    async def move(
        self,
        tx: UnitOfWork,
        backup_id: UUID,
        current: BackupStatus,
        target: BackupStatus,
        actor: Actor | None,
        **options: Any,
    ) -> BackupMetadata:
        """:meth:`try_move`, raising ``InvalidStateTransition`` when the race was lost."""
        moved = await self.try_move(tx, backup_id, current, target, actor, **options)
        if moved is None:
            raise InvalidStateTransition("The backup changed status meanwhile.")
        return moved

    async def move_many(
        self,
        tx: UnitOfWork,
        backups: Sequence[BackupMetadata],
        target: BackupStatus,
        actor: Actor | None,
        *,
        action: AuditAction = AuditAction.BACKUP_STATUS_CHANGE,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """:meth:`try_move` for many backups at once (a crypto-shred of thousands): the
        caller has locked and read them (``BackupsRepository.lock_many``); each is checked
        against the state machine, changed, given its transition row and its audit entry —
        in one flush and one batch of appends, all in ``tx``."""
        now = self.clock.now()
        sequences = await tx.backups.next_transition_sequences([b.id for b in backups])
        events = []
        for backup in backups:
            current = backup.status
            check_backup_transition(current, target)
            backup.status, backup.updated_at = target, now
            tx.backups.add_transition(
                new_transition(backup.id, sequences[backup.id], current, target, actor, now, reason)
            )
            events.append(
                AuditEvent.by(
                    actor,
                    action,
                    backup_resource(backup.id),
                    from_status=current.value,
                    to_status=target.value,
                    reason=reason,
                    **(details or {}),
                )
            )
        await tx.backups.flush()
        await self.trail.append_many(tx, events)

    async def fail_processing(
        self,
        tx: UnitOfWork,
        backup_id: UUID,
        reason: BackupFailureReason,
        actor: Actor | None,
        *,
        lease_lapsed_before: datetime | None = None,
    ) -> BackupMetadata | None:
        """``PROCESSING → FAILED`` (releasing the idempotency key, marking the objects for
        removal) with its ``BACKUP_FAILED`` entry, in ``tx``; ``None`` if no longer PROCESSING
        (or, with ``lease_lapsed_before``, if its lease has not lapsed)."""
        return await self.try_move(
            tx,
            backup_id,
            BackupStatus.PROCESSING,
            BackupStatus.FAILED,
            actor,
            action=AuditAction.BACKUP_FAILED,
            result=AuditResult.FAILED,
            reason=reason.value,
            lease_lapsed_before=lease_lapsed_before,
            values={
                "failure_reason": reason.value,
                "lease_expires_at": None,
                "idempotency_key": None,
                "cleanup_pending": True,
            },
        )

    async def remove_objects(self, backup_id: UUID) -> bool:
        """Remove a failed or deleted backup's objects and clear ``cleanup_pending``.

        False (and the flag stays set for the next sweep) when the store cannot be reached.
        """
        try:
            await self.store.discard_prefix(backup_prefix(backup_id))
        except StorageUnavailable:
            log.warning("backup_objects_not_removed", backup_id=str(backup_id))
            return False
        try:
            async with self.db.transaction(write=True) as tx:
                await tx.backups.mark_cleaned(backup_id)
        except SsbgError:
            return False
        return True
