"""Deleting a backup (SPEC §3): ``ACTIVE | QUARANTINED → DELETED``, then its objects go.

The status change and ``BACKUP_DELETE`` commit first (with ``cleanup_pending``), so a backup
is never ``ACTIVE`` without its objects; if the store cannot be reached the caller gets 503
and the sweep (or a repeated DELETE) removes the objects later.

A backup under a legal hold is never deleted (SPEC §13.4): the hold is checked under the row's
lock in the deleting transaction, so a hold placed a moment earlier always wins. A refused
deletion by hand is recorded (``BACKUP_DELETE``, ``DENIED``, ``details.reason = "LEGAL_HOLD"``)
and answered ``409 CONFLICT``. Retention deletes through :meth:`BackupDeletion.delete_expired`:
the same lock, checks, policy decision and lifecycle move, audited ``RETENTION_DELETE`` with the
rules that let each backup go.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.backup_lifecycle import check_backup_transition
from ssbg.domain.enums import AuditAction, AuditResult, BackupStatus, PolicyOperation
from ssbg.domain.errors import BackupNotFound, Conflict, StorageUnavailable
from ssbg.domain.identity import Actor
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import AuthService
from ssbg.services.backups.holds import hold_details
from ssbg.services.backups.lifecycle import BackupLifecycle
from ssbg.services.backups.reads import viewer_of
from ssbg.services.policy_enforcement import PolicyCheck, PolicyEnforcer, policy_error
from ssbg.services.unit_of_work import AppDatabase

# What retention deletes: a backup whose ciphertext is stored and sound. A QUARANTINED backup
# failed an integrity check and is evidence; retention leaves it to a person.
EXPIRABLE = BackupStatus.ACTIVE


@dataclass(frozen=True)
class Expired:
    """A backup a retention plan lets go, and the rules that matched it (none kept it)."""

    backup_id: UUID
    rules: tuple[str, ...]


@dataclass
class ExpiryOutcome:
    """What :meth:`BackupDeletion.delete_expired` did with a batch: the backups deleted (and,
    of those, the ones whose objects the store did not let go yet: the sweep removes them
    later), and the backups left with the reason (``LEGAL_HOLD``, ``STATUS_CHANGED``,
    ``POLICY_DENIED``, ``MFA_REQUIRED`` — a policy asks for a TOTP code the run did not bring —
    or ``NOT_FOUND``)."""

    deleted: list[UUID] = field(default_factory=list)
    objects_pending: list[UUID] = field(default_factory=list)
    skipped: dict[UUID, dict[str, Any]] = field(default_factory=dict)


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
        held: BackupMetadata | None = None
        async with self.db.transaction(write=True) as tx:
            visible = await tx.backups.get_visible_or_none(viewer_of(actor), backup_id)
            backup = await tx.backups.get_for_update_or_none(backup_id) if visible else None
            if backup is None:
                raise BackupNotFound()
            current = backup.status
            retry_cleanup = current is BackupStatus.DELETED and backup.cleanup_pending
            if not retry_cleanup:
                check_backup_transition(current, BackupStatus.DELETED)
            if not retry_cleanup and backup.held:
                held = backup
                await self.trail.append(
                    tx,
                    AuditEvent.by(
                        actor,
                        AuditAction.BACKUP_DELETE,
                        backup_resource(backup_id),
                        AuditResult.DENIED,
                        reason="LEGAL_HOLD",
                        status=current.value,
                        **hold_details(backup),
                    ),
                )
            elif not retry_cleanup:
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
        if held is not None:
            raise Conflict(
                "The backup is under a legal hold and cannot be deleted.",
                {"reason": "LEGAL_HOLD", **hold_details(held)},
            )
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

    async def delete_expired(
        self, actor: Actor, batch: Sequence[Expired], *, mfa_verified: bool
    ) -> ExpiryOutcome:
        """Delete a batch a retention plan lets go, in one transaction: every backup locked
        and read again first (in id order), then each one checked as it is now — still
        ``ACTIVE``, not held — and decided by policy as a deletion by hand would be. A backup
        that changed since the plan is left and reported, never deleted on stale facts."""
        outcome = ExpiryOutcome()
        async with self.db.transaction(write=True) as tx:
            locked = {b.id: b for b in await tx.backups.lock_many([e.backup_id for e in batch])}
            for expired in batch:
                backup = locked.get(expired.backup_id)
                if backup is None:
                    outcome.skipped[expired.backup_id] = {"reason": "NOT_FOUND"}
                    continue
                if backup.status is not EXPIRABLE:
                    outcome.skipped[backup.id] = {
                        "reason": "STATUS_CHANGED",
                        "status": backup.status.value,
                    }
                    continue
                if backup.held:
                    outcome.skipped[backup.id] = {"reason": "LEGAL_HOLD", **hold_details(backup)}
                    continue
                decided = await self.policy.decide(
                    tx,
                    actor,
                    PolicyCheck(
                        operation=PolicyOperation.DELETE,
                        resource=backup_resource(backup.id),
                        classification=backup.classification,
                        source_system=backup.source_system,
                        mfa_verified=mfa_verified,
                        audit_details={"via": "retention"},
                    ),
                )
                if not decided.decision.allowed:
                    await self.trail.append(tx, decided.event)
                    outcome.skipped[backup.id] = {
                        "reason": "MFA_REQUIRED"
                        if decided.decision.requires_mfa
                        else "POLICY_DENIED",
                        "rule": decided.decision.rule,
                    }
                    continue
                await self.lifecycle.move(
                    tx,
                    backup.id,
                    EXPIRABLE,
                    BackupStatus.DELETED,
                    actor,
                    action=AuditAction.RETENTION_DELETE,
                    reason=AuditAction.RETENTION_DELETE.value,
                    values={"cleanup_pending": True},
                    details={
                        "rules": list(expired.rules),
                        "created_at": format_timestamp(backup.created_at),
                        "storage_backend": backup.storage_backend,
                        "storage_ref": backup.storage_ref,
                        "wrapped_dek_ref": backup.wrapped_dek_ref,
                    },
                    preceding_events=[decided.event],
                )
                outcome.deleted.append(backup.id)
        for backup_id in outcome.deleted:
            if not await self.lifecycle.remove_objects(backup_id):
                outcome.objects_pending.append(backup_id)
        return outcome
