"""Releasing a quarantined backup (SPEC §13.4): ``POST /backups/{id}/release``.

``QUARANTINED → ACTIVE`` through the lifecycle core, audited ``BACKUP_RELEASE`` with the
caller's reason, only when the backup's last verification is ``VALID`` and started after it
was last quarantined (the time of that transition). Otherwise ``409 CONFLICT`` with
``details.reason = "VERIFICATION_REQUIRED"``, and the refused attempt is audited (``DENIED``):
somebody tried to put an unverified backup back into service.

A quarantined backup cannot be restored. The gate keeps it that way until it has been shown
intact since whatever put it there; it is not the only guard against corrupt data reaching a
requester: every restore verifies the whole backup again before it issues a token.
"""

from dataclasses import dataclass
from uuid import UUID

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.enums import AuditAction, AuditResult, BackupStatus
from ssbg.domain.errors import BackupNotFound, Conflict, SsbgError
from ssbg.domain.identity import Actor
from ssbg.domain.verification import RELEASED_AFTER_VERIFICATION, release_refusal
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.audit_service import AuditTrail
from ssbg.services.backups import BackupLifecycle
from ssbg.services.unit_of_work import AppDatabase


@dataclass(frozen=True, slots=True)
class BackupRelease:
    db: AppDatabase
    trail: AuditTrail
    lifecycle: BackupLifecycle

    async def release_backup(self, actor: Actor, backup_id: UUID, reason: str) -> BackupMetadata:
        """Release (see the module doc); ``InvalidStateTransition`` unless ``QUARANTINED``."""
        refusal: SsbgError | None = None
        async with self.db.transaction(write=True) as tx:
            backup = await tx.backups.lock_or_none(backup_id)
            if backup is None:
                raise BackupNotFound()
            quarantined_at = await tx.backups.last_quarantined_at(backup_id)
            refusal = release_refusal(
                backup.status,
                quarantined_at=quarantined_at,
                last_verified_at=backup.last_verified_at,
                last_result=backup.last_verification_result,
            )
            if refusal is None:
                assert backup.last_verified_at is not None
                backup = await self.lifecycle.move(
                    tx,
                    backup_id,
                    BackupStatus.QUARANTINED,
                    BackupStatus.ACTIVE,
                    actor,
                    action=AuditAction.BACKUP_RELEASE,
                    reason=RELEASED_AFTER_VERIFICATION,
                    details={
                        "justification": reason,
                        "verified_at": format_timestamp(backup.last_verified_at),
                    },
                )
            elif isinstance(refusal, Conflict):
                await self.trail.append(
                    tx,
                    AuditEvent.by(
                        actor,
                        AuditAction.BACKUP_RELEASE,
                        backup_resource(backup_id),
                        AuditResult.DENIED,
                        justification=reason,
                        **refusal.details,
                    ),
                )
        if refusal is not None:
            raise refusal
        return backup
