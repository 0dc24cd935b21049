"""A fresh download token for the requester's own restore (SPEC §3 Restores).

How a requester collects the download after someone else approved it, or replaces a lost or
expired token. Admission is decided again (incident level, backup state, policy, MFA, rates)
and the key version must still be usable. Under incident level 2, a restore nobody approved
goes back to ``PENDING_APPROVAL`` instead (202, no token).
"""

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from ssbg.domain.audit_events import AuditEvent, restore_resource
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import (
    CryptoShredded,
    InvalidStateTransition,
    KeyUnavailable,
    RestoreNotFound,
)
from ssbg.domain.identity import Actor
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.restore_lifecycle import TOKEN_STATUSES, RestoreStatus
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.db.models import RestoreRequest
from ssbg.services.audit_service import AuditTrail
from ssbg.services.restores.admission import RestoreAdmission
from ssbg.services.restores.lifecycle import RestoreLifecycle
from ssbg.services.restores.results import RestoreOutcome, new_token
from ssbg.services.restores.verification import BackupReader
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork


async def own_restore(tx: UnitOfWork, actor: Actor, restore_id: UUID) -> RestoreRequest:
    """The requester's own request, locked; anybody else's is reported as not found."""
    restore = await tx.restores.get_for_update_or_none(restore_id)
    if restore is None or restore.requested_by != actor.key_id:
        raise RestoreNotFound()
    return restore


@dataclass(frozen=True, slots=True)
class RestoreTokens:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    admission: RestoreAdmission
    lifecycle: RestoreLifecycle
    reader: BackupReader
    integrity: IntegrityKey
    token_ttl: timedelta

    async def issue_token(
        self, actor: Actor, restore_id: UUID, *, mfa_token: str | None = None
    ) -> RestoreOutcome:
        mfa_verified = await self.admission.mfa_verified(actor, mfa_token)
        async with self.db.transaction(write=True) as tx:
            restore = await own_restore(tx, actor, restore_id)
            status = restore.status
            admission = await self.admission.admit(
                tx,
                actor,
                restore.backup_id,
                restore.id,
                mfa_verified=mfa_verified,
                exclude=restore.id,
            )
            if status not in TOKEN_STATUSES and admission.level is not IncidentLevel.LOCKDOWN:
                raise InvalidStateTransition(
                    f"No download token for a {status.value} restore request.",
                    {"status": status.value},
                )
            problem = admission.problem
            if problem is None and admission.backup is not None:
                try:
                    await self.reader.usable_private_key(tx, admission.backup)
                except (CryptoShredded, KeyUnavailable) as unusable:
                    problem = unusable
            if problem is not None:
                for event in admission.events:
                    await self.trail.append(tx, event)
                await self.trail.append(
                    tx,
                    AuditEvent.by(
                        actor,
                        AuditAction.RESTORE_DENIED,
                        restore_resource(restore.id),
                        AuditResult.DENIED,
                        backup_id=str(restore.backup_id),
                        token_issued=False,
                        awaiting_approval=status is RestoreStatus.PENDING_APPROVAL,
                        code=problem.code,
                    ),
                )
                token = None
            elif admission.needs_approval and restore.approved_by is None:
                restore = await self.lifecycle.move(
                    tx,
                    restore.id,
                    status,
                    RestoreStatus.PENDING_APPROVAL,
                    actor,
                    action=AuditAction.RESTORE_REQUEST,
                    details={"token_issued": False, "awaiting_approval": True},
                    preceding_events=admission.events,
                    token_hash=None,
                    token_expires_at=None,
                )
                token = None
            else:
                token, token_values = new_token(self.integrity, self.clock.now(), self.token_ttl)
                restore = await self.lifecycle.move(
                    tx,
                    restore.id,
                    status,
                    RestoreStatus.COMPLETED,
                    actor,
                    action=AuditAction.RESTORE_COMPLETE,
                    details={"token_issued": True, "awaiting_approval": False},
                    preceding_events=admission.events,
                    **token_values,
                )
        if problem is not None:
            raise problem
        return RestoreOutcome(restore, token)
