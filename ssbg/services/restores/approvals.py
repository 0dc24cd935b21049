"""Four eyes (SPEC §3 Restores): a second admin approves or rejects a parked request.

Nobody decides their own request (the refusal is audited and commits although the call
fails). An approval is admitted again — incident level, backup state, policy, rates — then
the backup is decrypted and verified as for a direct restore; the requester collects the
token afterwards (``POST /restores/{id}/token``).
"""

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from ssbg.domain.audit_events import AuditEvent, restore_resource
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import InvalidStateTransition, PolicyDenied, RestoreNotFound, SsbgError
from ssbg.domain.identity import Actor
from ssbg.domain.restore_lifecycle import RestoreStatus
from ssbg.infrastructure import metrics
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import RestoreRequest
from ssbg.services.audit_service import AuditTrail
from ssbg.services.restores.admission import RestoreAdmission
from ssbg.services.restores.lifecycle import RestoreLifecycle
from ssbg.services.restores.verification import RestoreVerification
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

APPROVAL_RULE = "APPROVAL"


@dataclass(frozen=True, slots=True)
class RestoreApprovals:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    admission: RestoreAdmission
    lifecycle: RestoreLifecycle
    verification: RestoreVerification
    lease: timedelta

    async def approve(self, actor: Actor, restore_id: UUID) -> RestoreRequest:
        """Approve a ``PENDING_APPROVAL`` request of someone else (the route demands MFA),
        then verify the backup (see the module doc)."""
        now = self.clock.now()
        async with self.db.transaction(write=True) as tx:
            restore = await self._pending_for_decision(tx, restore_id)
            problem = await self._four_eyes(tx, actor, restore)
            if problem is None:
                admission = await self.admission.admit(
                    tx,
                    actor,
                    restore.backup_id,
                    restore.id,
                    mfa_verified=True,
                    exclude=restore.id,
                )
                problem = admission.problem
                if problem is None:
                    restore = await self.lifecycle.move(
                        tx,
                        restore.id,
                        RestoreStatus.PENDING_APPROVAL,
                        RestoreStatus.VERIFYING,
                        actor,
                        action=AuditAction.RESTORE_APPROVED,
                        details={"requested_by": str(restore.requested_by)},
                        preceding_events=admission.events,
                        approved_by=actor.key_id,
                        approved_at=now,
                        lease_expires_at=now + self.lease,
                    )
                else:
                    for event in admission.events:
                        await self.trail.append(tx, event)
                    await self.trail.append(
                        tx,
                        AuditEvent.by(
                            actor,
                            AuditAction.RESTORE_APPROVED,
                            restore_resource(restore.id),
                            AuditResult.DENIED,
                            requested_by=str(restore.requested_by),
                            code=problem.code,
                        ),
                    )
        if problem is not None:
            raise problem
        assert admission.backup is not None
        outcome = await self.verification.verify_and_complete(
            actor, restore, admission.backup, issue_token=False
        )
        return outcome.restore

    async def reject(self, actor: Actor, restore_id: UUID, reason: str) -> RestoreRequest:
        now = self.clock.now()
        async with self.db.transaction(write=True) as tx:
            restore = await self._pending_for_decision(tx, restore_id)
            problem = await self._four_eyes(tx, actor, restore)
            if problem is None:
                restore = await self.lifecycle.move(
                    tx,
                    restore.id,
                    RestoreStatus.PENDING_APPROVAL,
                    RestoreStatus.REJECTED,
                    actor,
                    action=AuditAction.RESTORE_REJECTED,
                    details={"requested_by": str(restore.requested_by), "reason": reason},
                    rejected_by=actor.key_id,
                    rejected_at=now,
                    rejection_reason=reason,
                )
        if problem is not None:
            raise problem
        metrics.record_restore("rejected")
        return restore

    @staticmethod
    async def _pending_for_decision(tx: UnitOfWork, restore_id: UUID) -> RestoreRequest:
        restore = await tx.restores.get_for_update_or_none(restore_id)
        if restore is None:
            raise RestoreNotFound()
        if restore.status is not RestoreStatus.PENDING_APPROVAL:
            raise InvalidStateTransition(
                "Only a PENDING_APPROVAL request can be decided; "
                f"this one is {restore.status.value}.",
                {"status": restore.status.value},
            )
        return restore

    async def _four_eyes(
        self, tx: UnitOfWork, actor: Actor, restore: RestoreRequest
    ) -> SsbgError | None:
        """Nobody decides their own request; the refusal is recorded (it commits although the
        call then fails)."""
        if restore.requested_by != actor.key_id:
            return None
        await self.trail.append(
            tx,
            AuditEvent.by(
                actor,
                AuditAction.AUTHZ_DENY,
                restore_resource(restore.id),
                AuditResult.DENIED,
                reason="SELF_APPROVAL",
            ),
        )
        return PolicyDenied(
            "A restore request cannot be approved or rejected by its requester.",
            {"rule": APPROVAL_RULE, "reason_category": "SEPARATION_OF_DUTIES"},
        )
