"""Deleting a backup (SPEC §3): ``ACTIVE | QUARANTINED → DELETED``, then its objects go.

The status change and ``BACKUP_DELETE`` commit first (with ``cleanup_pending``), so a backup
is never ``ACTIVE`` without its objects; if the store cannot be reached the caller gets 503
and the sweep (or a repeated DELETE) removes the objects later.
"""

from dataclasses import dataclass
from uuid import UUID

from ssbg.domain.audit_events import backup_resource
from ssbg.domain.backup_lifecycle import check_backup_transition
from ssbg.domain.enums import AuditAction, BackupStatus, PolicyOperation
from ssbg.domain.errors import BackupNotFound, StorageUnavailable
from ssbg.domain.identity import Actor
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import AuthService
from ssbg.services.backups.lifecycle import BackupLifecycle
from ssbg.services.backups.reads import viewer_of
from ssbg.services.policy_enforcement import PolicyCheck, PolicyEnforcer, policy_error
from ssbg.services.unit_of_work import AppDatabase


@dataclass(frozen=True, slots=True)
class BackupDeletion:
    db: AppDatabase
    trail: AuditTrail
    policy: PolicyEnforcer
    auth: AuthService
    lifecycle: BackupLifecycle

    async def delete_backup(
        self, actor: Actor, backup_id: UUID, *, mfa_token: str | None = None
    ) -> BackupMetadata:
        """Delete (see the module doc); a repeated DELETE of a backup whose objects are still
        pending removal retries the removal."""
        mfa_verified = False
        if mfa_token:
            await self.auth.verify_mfa(actor, mfa_token)
            mfa_verified = True
        async with self.db.transaction(write=True) as tx:
            backup = await tx.backups.get_visible_or_none(viewer_of(actor), backup_id)
            if backup is None:
                raise BackupNotFound()
            current = backup.status
            retry_cleanup = current is BackupStatus.DELETED and backup.cleanup_pending
            if not retry_cleanup:
                check_backup_transition(current, BackupStatus.DELETED)
                outcome = await self.policy.decide(
                    tx,
                    actor,
                    PolicyCheck(
                        operation=PolicyOperation.DELETE,
                        resource=backup_resource(backup_id),
                        classification=backup.classification,
                        source_system=backup.source_system,
                        mfa_verified=mfa_verified,
                    ),
                )
                if outcome.decision.allowed:
                    backup = await self.lifecycle.move(
                        tx,
                        backup_id,
                        current,
                        BackupStatus.DELETED,
                        actor,
                        action=AuditAction.BACKUP_DELETE,
                        reason=AuditAction.BACKUP_DELETE.value,
                        values={"cleanup_pending": True},
                        details={
                            "storage_backend": backup.storage_backend,
                            "storage_ref": backup.storage_ref,
                            "wrapped_dek_ref": backup.wrapped_dek_ref,
                        },
                        preceding_events=[outcome.event],
                    )
                else:
                    await self.trail.append(tx, outcome.event)
        if not retry_cleanup and outcome.decision.denied:
            raise policy_error(outcome.decision)
        if not await self.lifecycle.remove_objects(backup_id):
            raise StorageUnavailable(
                "The backup is DELETED but its ciphertext could not be removed yet; "
                "removal is retried automatically.",
                {"status": BackupStatus.DELETED.value, "cleanup_pending": True},
            )
        backup.cleanup_pending = False
        return backup
