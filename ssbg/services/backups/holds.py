"""Legal holds (SPEC §13.4): a held backup is never deleted — by hand, by retention, or by a
crypto-shred of its key version — until the hold is released.

A hold is three sealed columns of the backup row (when, by whom, why), placed and released under
the row's lock with its audit entry (``BACKUP_HOLD`` / ``BACKUP_HOLD_RELEASE``) in the same
transaction. Only a backup whose ciphertext is still stored can be held: ``ACTIVE`` or
``QUARANTINED`` (a quarantined backup is evidence too). A hold changes no status: a held backup
may still be quarantined, released from quarantine, restored and rewrapped.

Against a crypto-shred of the backup's key version running at the same moment: placing a hold
share-locks the key version's row, which the shred locks for update while it looks for held
backups. Whichever comes first wins — a hold placed first is seen by the shred (``409`` listing
it), a shred begun first makes the hold fail (``409``, ``details.reason = "KEY_SHREDDING"``).
"""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.enums import AuditAction, BackupStatus, KeyVersionStatus
from ssbg.domain.errors import BackupNotFound, Conflict, InvalidStateTransition
from ssbg.domain.identity import Actor
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase

HOLDABLE = (BackupStatus.ACTIVE, BackupStatus.QUARANTINED)


def hold_details(backup: BackupMetadata) -> dict[str, Any]:
    """Who holds ``backup`` since when (for errors and audit entries; not the reason, which
    the backup's own record shows to whoever may read it)."""
    return {
        "held_at": format_timestamp(backup.legal_hold_at) if backup.legal_hold_at else None,
        "held_by": str(backup.legal_hold_by) if backup.legal_hold_by else None,
    }


@dataclass(frozen=True, slots=True)
class BackupHolds:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock

    async def place_hold(self, actor: Actor, backup_id: UUID, reason: str) -> BackupMetadata:
        """Hold the backup (the route has checked the role and the TOTP code)."""
        async with self.db.transaction(write=True) as tx:
            backup = await tx.backups.get_for_update_or_none(backup_id)
            if backup is None:
                raise BackupNotFound()
            if backup.status not in HOLDABLE:
                raise InvalidStateTransition(
                    f"A {backup.status.value} backup has no stored data left to hold.",
                    {"status": backup.status.value, "reason": "NOT_STORED"},
                )
            if backup.held:
                raise Conflict(
                    "The backup is already under a legal hold; release it first to change it.",
                    {"reason": "ALREADY_HELD", **hold_details(backup)},
                )
            key = await tx.key_versions.lock_shared_or_none(backup.key_version)
            if key is None or key.shred_started_at or key.status is KeyVersionStatus.DESTROYED:
                raise InvalidStateTransition(
                    f"The backup's key version {backup.key_version} is being destroyed.",
                    {"key_version": backup.key_version, "reason": "KEY_SHREDDING"},
                )
            now = self.clock.now()
            backup.legal_hold_at, backup.legal_hold_by = now, actor.key_id
            backup.legal_hold_reason, backup.updated_at = reason, now
            await tx.backups.flush()
            await self.trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.BACKUP_HOLD,
                    backup_resource(backup_id),
                    reason=reason,
                    status=backup.status.value,
                    key_version=backup.key_version,
                ),
            )
        return backup

    async def release_hold(self, actor: Actor, backup_id: UUID, reason: str) -> BackupMetadata:
        """Release the hold; the backup may be deleted, expired or shredded again."""
        async with self.db.transaction(write=True) as tx:
            backup = await tx.backups.get_for_update_or_none(backup_id)
            if backup is None:
                raise BackupNotFound()
            if not backup.held:
                raise Conflict(
                    "The backup is not under a legal hold.",
                    {"reason": "NOT_HELD", "status": backup.status.value},
                )
            released: dict[str, Any] = {
                **hold_details(backup),
                "hold_reason": backup.legal_hold_reason,
            }
            now = self.clock.now()
            backup.legal_hold_at = backup.legal_hold_by = backup.legal_hold_reason = None
            backup.updated_at = now
            await tx.backups.flush()
            await self.trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.BACKUP_HOLD_RELEASE,
                    backup_resource(backup_id),
                    reason=reason,
                    status=backup.status.value,
                    **released,
                ),
            )
        return backup
