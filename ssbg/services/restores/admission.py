"""Admission: may this caller restore this backup now? Computed once, by one function.

A new request, a fresh download token and an approval all ask the same question under the
``system_state`` row lock (which serialises restore admission across replicas, so the P5/P6
hourly counts are exact): the incident level, the backup's state, then the policy decision
(role, classification and MFA, business hours, rates, custom records). The answer is an
:class:`Admission` value; the use case records its ``events`` and acts on it.
"""

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.enums import BackupStatus, PolicyOperation
from ssbg.domain.errors import (
    BackupNotFound,
    CryptoShredded,
    InvalidStateTransition,
    RateLimited,
    SsbgError,
)
from ssbg.domain.identity import Actor
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.policy_engine import BuiltinRule
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.auth_service import AuthService
from ssbg.services.incident_service import effective_level
from ssbg.services.policy_enforcement import PolicyCheck, PolicyEnforcer, policy_error
from ssbg.services.unit_of_work import UnitOfWork

RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Admission:
    """Why the restore may not go ahead (``problem``), or whether it needs a second admin's
    approval first; the evidence to record (``events``: the policy check, when policy was
    consulted); the backup; the incident level it was decided at."""

    problem: SsbgError | None
    needs_approval: bool
    events: tuple[AuditEvent, ...]
    backup: BackupMetadata | None
    level: IncidentLevel


def backup_problem(backup: BackupMetadata | None) -> SsbgError | None:
    """Why this backup cannot be restored, or ``None`` if it can (it is ``ACTIVE``)."""
    if backup is None:
        return BackupNotFound()
    if backup.status is BackupStatus.ACTIVE:
        return None
    if backup.status is BackupStatus.CRYPTO_SHREDDED:
        return CryptoShredded()
    return InvalidStateTransition(
        f"A {backup.status.value} backup cannot be restored.",
        {"backup_status": backup.status.value},
    )


@dataclass(frozen=True, slots=True)
class RestoreAdmission:
    clock: Clock
    policy: PolicyEnforcer
    auth: AuthService

    async def mfa_verified(self, actor: Actor, mfa_token: str | None) -> bool:
        """Check a TOTP code the caller sent (raising if it is wrong); ``False`` if none."""
        if not mfa_token:
            return False
        await self.auth.verify_mfa(actor, mfa_token)
        return True

    async def lock_level(self, tx: UnitOfWork) -> IncidentLevel:
        """Lock the system-state row (serialising restore admission) and read the level."""
        state = await tx.lock_system_state()
        return effective_level(state, self.clock.now())

    async def admit(
        self,
        tx: UnitOfWork,
        actor: Actor,
        backup_id: UUID,
        restore_id: UUID,
        *,
        mfa_verified: bool,
        exclude: UUID | None = None,
    ) -> Admission:
        """Decide whether ``actor`` may restore ``backup_id`` now (``exclude``: the request
        being decided again, not to be counted against its own rate limits)."""
        level = await self.lock_level(tx)
        backup = await tx.backups.get_or_none(backup_id)
        # Under lockdown the policy's refusal (423) is the answer, whatever the backup.
        problem = None if level is IncidentLevel.LOCKDOWN else backup_problem(backup)
        if problem is not None:
            return Admission(problem, False, (), backup, level)
        now = self.clock.now()
        since = now - RATE_WINDOW
        by_key = await tx.restores.count_since(since, requested_by=actor.key_id, exclude=exclude)
        overall = await tx.restores.count_since(since, exclude=exclude)
        outcome = await self.policy.decide(
            tx,
            actor,
            PolicyCheck(
                operation=PolicyOperation.RESTORE,
                resource=backup_resource(backup_id),
                classification=backup.classification if backup else None,
                source_system=backup.source_system if backup else None,
                mfa_verified=mfa_verified,
                restores_by_key_last_hour=by_key.count,
                restores_last_hour=overall.count,
                audit_details={"restore_id": str(restore_id)},
            ),
        )
        decision = outcome.decision
        events = (outcome.event,)
        if decision.allowed:
            return Admission(None, decision.requires_approval, events, backup, level)
        error = policy_error(decision)
        if isinstance(error, RateLimited):
            oldest = by_key.oldest if decision.rule == BuiltinRule.P5.value else overall.oldest
            if oldest is not None:
                error.retry_after_seconds = max(
                    1, int((oldest + RATE_WINDOW - now).total_seconds())
                )
        return Admission(error, False, events, backup, level)
