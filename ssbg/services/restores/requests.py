"""A new restore request (SPEC §3 Restores, §8): admit, then verify, then a token.

1. *admit* — one transaction under the admission lock: the :class:`Admission`, the
   ``restore_requests`` row and ``RESTORE_REQUEST`` + ``POLICY_CHECK_*``; committed. A refusal
   commits ``RESTORE_DENIED`` too (status ``DENIED``), then raises. Incident level 2 parks the
   request as ``PENDING_APPROVAL`` (202): no key is unwrapped until a second admin approves.
2. *verify* and 3. *complete* — see :mod:`ssbg.services.restores.verification`; the token is
   returned only after ``RESTORE_COMPLETE`` has committed.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid4

from ssbg.domain.audit_events import AuditEvent, restore_resource
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import RestoreNotFound, SsbgError
from ssbg.domain.identity import Actor
from ssbg.domain.queries import RestoreCursor
from ssbg.domain.restore_lifecycle import RestoreStatus
from ssbg.infrastructure import metrics
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import RestoreRequest
from ssbg.services.audit_service import AuditTrail
from ssbg.services.restores.admission import RestoreAdmission
from ssbg.services.restores.results import RestoreOutcome
from ssbg.services.restores.verification import RestoreVerification
from ssbg.services.unit_of_work import AppDatabase


def denied_event(actor: Actor, restore: RestoreRequest, error: SsbgError) -> AuditEvent:
    return AuditEvent.by(
        actor,
        AuditAction.RESTORE_DENIED,
        restore_resource(restore.id),
        AuditResult.DENIED,
        backup_id=str(restore.backup_id),
        code=error.code,
        rule=error.details.get("rule"),
        reason_category=error.details.get("reason_category"),
    )


@dataclass(frozen=True, slots=True)
class RestoreRequests:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    admission: RestoreAdmission
    verification: RestoreVerification
    lease: timedelta

    async def request_restore(
        self, actor: Actor, backup_id: UUID, justification: str, *, mfa_token: str | None = None
    ) -> RestoreOutcome:
        mfa_verified = await self.admission.mfa_verified(actor, mfa_token)
        now = self.clock.now()
        restore_id = uuid4()
        async with self.db.transaction(write=True) as tx:
            admission = await self.admission.admit(
                tx, actor, backup_id, restore_id, mfa_verified=mfa_verified
            )
            if admission.problem is not None:
                status, lease = RestoreStatus.DENIED, None
            elif admission.needs_approval:
                status, lease = RestoreStatus.PENDING_APPROVAL, None
            else:
                status, lease = RestoreStatus.VERIFYING, now + self.lease
            problem = admission.problem
            restore = RestoreRequest(
                id=restore_id,
                backup_id=backup_id,
                requested_by=actor.key_id,
                justification=justification,
                status=status,
                source_ip=actor.context.source_ip,
                mfa_verified=mfa_verified,
                denial_code=problem.code if problem else None,
                denial_rule=problem.details.get("rule") if problem else None,
                downloads=0,
                lease_expires_at=lease,
                created_at=now,
                updated_at=now,
            )
            await tx.restores.add(restore)
            requested = AuditEvent.by(
                actor,
                AuditAction.RESTORE_REQUEST,
                restore_resource(restore.id),
                backup_id=str(backup_id),
                justification=justification,
            )
            for event in (requested, *admission.events):
                await self.trail.append(tx, event)
            if problem is not None:
                await self.trail.append(tx, denied_event(actor, restore, problem))
        if problem is not None:
            metrics.record_restore("denied")
            raise problem
        if admission.needs_approval:
            return RestoreOutcome(restore)
        assert admission.backup is not None
        return await self.verification.verify_and_complete(
            actor, restore, admission.backup, issue_token=True
        )

    async def get_restore(self, restore_id: UUID) -> RestoreRequest:
        async with self.db.transaction(write=False) as tx:
            restore = await tx.restores.get_or_none(restore_id)
        if restore is None:
            raise RestoreNotFound()
        return restore

    async def list_restores(
        self, status: RestoreStatus | None, after: RestoreCursor | None, limit: int
    ) -> tuple[Sequence[RestoreRequest], RestoreCursor | None]:
        """A page of requests, newest first, and the cursor of the next page (if any)."""
        async with self.db.transaction(write=False) as tx:
            restores = await tx.restores.list_newest(status, after, limit + 1)
        items = restores[:limit]
        more = len(restores) > limit
        cursor = RestoreCursor(items[-1].created_at, items[-1].id) if more and items else None
        return items, cursor
