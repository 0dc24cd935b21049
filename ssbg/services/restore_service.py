"""Restores (SPEC §3 Restores, §5, §8): authorise, decrypt-and-verify, then hand out a token.

A restore leaves evidence whatever happens, in short explicit transactions; none is open while
the backup is decrypted:

1. *admit* — under the ``system_state`` row lock (which serialises restore admission across
   replicas, so the P5/P6 hourly counts are exact): the backup's state, the policy decision
   (incident level, role, classification and MFA, business hours, rates, custom records), the
   ``restore_requests`` row and ``RESTORE_REQUEST`` + ``POLICY_CHECK_*``; committed. A denial
   commits ``RESTORE_DENIED`` too, then raises. Incident level 2 parks the request as
   ``PENDING_APPROVAL`` (202) — no key is unwrapped until a second admin approves.
2. *verify* — the key version's status is re-read from the database (a destroyed key is
   refused on every replica), the DEK unwrapped, every segment authenticated and decrypted,
   both SHA-512s recomputed and compared with the metadata; the plaintext is discarded. A lease
   is renewed meanwhile, so a dead gateway's request is failed by recovery.
3. *complete* — ``VERIFYING → COMPLETED`` with the token's hash, ``KEY_UNWRAP`` and
   ``RESTORE_COMPLETE``; committed. Only then is the token returned (once).

An integrity failure quarantines the backup (``ACTIVE → QUARANTINED``, transition + audit) and
fails the request; no token is ever issued on a failure path. Downloads decrypt again,
segment by segment, and abort the connection at the first segment that does not authenticate.
"""

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import structlog
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.audit_events import AuditEvent, backup_resource, restore_resource
from ssbg.domain.enums import (
    AuditAction,
    AuditResult,
    BackupStatus,
    Classification,
    KeyVersionStatus,
    PolicyOperation,
)
from ssbg.domain.errors import (
    BackupNotFound,
    CryptoShredded,
    IncidentLockdown,
    IntegrityFailure,
    InvalidStateTransition,
    KeyUnavailable,
    PolicyDenied,
    RateLimited,
    RestoreNotFound,
    RestoreTokenExpired,
    SsbgError,
)
from ssbg.domain.identity import SYSTEM_CONTEXT, Principal, RequestContext
from ssbg.domain.incident import IncidentLevel, effective_incident_level
from ssbg.domain.policy_engine import BuiltinRule, ReasonCategory
from ssbg.domain.restore_lifecycle import TOKEN_STATUSES, RestoreStatus, check_restore_transition
from ssbg.domain.restore_tokens import TOKEN_BYTES, hash_token, token_expired, token_matches
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.crypto.object_format import (
    ObjectDecryptor,
    ObjectHeader,
    dek_resolver_for,
)
from ssbg.infrastructure.crypto.stream_decryption import decrypt_object, verify_object
from ssbg.infrastructure.db.models import BackupMetadata, RestoreRequest
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.infrastructure.storage.errors import ObjectMissing
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import AuthService
from ssbg.services.backup_service import BackupService
from ssbg.services.policy_enforcement import PolicyCheck, PolicyEnforcer, policy_error
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork
from ssbg.settings import Settings

log = structlog.get_logger("ssbg.restores")

RATE_WINDOW = timedelta(hours=1)
READ_CHUNK_SEGMENTS = 1
APPROVAL_RULE = "APPROVAL"


@dataclass(frozen=True)
class RestoreOutcome:
    """A restore request, and its download token when one was just issued (shown once)."""

    restore: RestoreRequest
    token: str | None = None


@dataclass(frozen=True)
class RestoreDownload:
    filename: str
    size: int
    checksum_plaintext: str
    content_type: str
    chunks: AsyncIterator[bytes]


def _backup_problem(backup: BackupMetadata | None) -> SsbgError | None:
    """Why this backup cannot be restored, or ``None`` if it can (it is ``ACTIVE``)."""
    if backup is None:
        return BackupNotFound()
    status = BackupStatus(backup.status)
    if status is BackupStatus.ACTIVE:
        return None
    if status is BackupStatus.CRYPTO_SHREDDED:
        return CryptoShredded()
    return InvalidStateTransition(
        f"A {status.value} backup cannot be restored.", {"backup_status": status.value}
    )


def _key_unwrap_event(
    principal: Principal, context: RequestContext, backup: BackupMetadata, restore: RestoreRequest
) -> AuditEvent:
    return AuditEvent.by(
        principal,
        context,
        AuditAction.KEY_UNWRAP,
        backup_resource(backup.id),
        key_version=backup.key_version,
        restore_id=str(restore.id),
    )


def _failed_event(
    principal: Principal | None,
    context: RequestContext,
    restore_id: UUID,
    backup_id: UUID,
    reason: str,
    **details: Any,
) -> AuditEvent:
    return AuditEvent.by(
        principal,
        context,
        AuditAction.RESTORE_FAILED,
        restore_resource(restore_id),
        AuditResult.FAILED,
        backup_id=str(backup_id),
        reason=reason,
        **details,
    )


class RestoreService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        settings: Settings,
        store: ObjectStore,
        key_store: FileKeyStore,
        policy: PolicyEnforcer,
        auth: AuthService,
        backups: BackupService,
    ) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock
        self._settings = settings
        self._store = store
        self._keys = key_store
        self._policy = policy
        self._auth = auth
        self._backups = backups
        self._token_ttl = timedelta(seconds=settings.restore_token_ttl_seconds)
        self._lease = timedelta(seconds=settings.backup_lease_seconds)

    # -- request --------------------------------------------------------------------------

    async def request_restore(
        self,
        principal: Principal,
        context: RequestContext,
        backup_id: UUID,
        justification: str,
        *,
        mfa_token: str | None = None,
    ) -> RestoreOutcome:
        mfa_verified = await self._verify_mfa_if_given(principal, context, mfa_token)
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            level = await self._lock_admission(tx)
            backup = await tx.backups.get_or_none(backup_id)
            restore = RestoreRequest(
                id=uuid4(),
                backup_id=backup_id,
                requested_by=principal.key_id,
                justification=justification,
                status=RestoreStatus.VERIFYING.value,
                source_ip=context.source_ip,
                mfa_verified=mfa_verified,
                downloads=0,
                lease_expires_at=now + self._lease,
                created_at=now,
                updated_at=now,
            )
            events = [
                AuditEvent.by(
                    principal,
                    context,
                    AuditAction.RESTORE_REQUEST,
                    restore_resource(restore.id),
                    backup_id=str(backup_id),
                    justification=justification,
                )
            ]
            problem = None if level is IncidentLevel.LOCKDOWN else _backup_problem(backup)
            approval = False
            if problem is None:
                problem, approval, policy_event = await self._decide(
                    tx, principal, context, backup, restore, mfa_verified=mfa_verified
                )
                events.append(policy_event)
            if problem is not None:
                restore.status = RestoreStatus.DENIED.value
                restore.lease_expires_at = None
                restore.denial_code = problem.code
                restore.denial_rule = problem.details.get("rule")
                events.append(self._denied_event(principal, context, restore, problem))
            elif approval:
                restore.status = RestoreStatus.PENDING_APPROVAL.value
                restore.lease_expires_at = None
            await tx.restores.add(restore)
            for event in events:
                await self._trail.append(tx, event)
        if problem is not None:
            raise problem
        if approval:
            return RestoreOutcome(restore)
        assert backup is not None
        return await self._verify_and_complete(
            principal, context, restore, backup, issue_token=True
        )

    async def _verify_mfa_if_given(
        self, principal: Principal, context: RequestContext, mfa_token: str | None
    ) -> bool:
        if not mfa_token:
            return False
        await self._auth.verify_mfa(principal, mfa_token, context)
        return True

    async def _lock_admission(self, tx: UnitOfWork) -> IncidentLevel:
        """Lock the system-state row (serialising restore admission) and read the level."""
        state = await tx.system_state.get(for_update=True)
        return effective_incident_level(
            state.incident_level, state.incident_changed_at, state.last_alert_at, self._clock.now()
        )

    async def _decide(
        self,
        tx: UnitOfWork,
        principal: Principal,
        context: RequestContext,
        backup: BackupMetadata | None,
        restore: RestoreRequest,
        *,
        mfa_verified: bool,
        exclude: UUID | None = None,
    ) -> tuple[SsbgError | None, bool, AuditEvent]:
        """The policy decision for restoring ``backup``: (error, needs approval, audit event)."""
        now = self._clock.now()
        since = now - RATE_WINDOW
        by_key = await tx.restores.count_since(
            since, requested_by=principal.key_id, exclude=exclude
        )
        overall = await tx.restores.count_since(since, exclude=exclude)
        outcome = await self._policy.decide(
            tx,
            principal,
            context,
            PolicyCheck(
                operation=PolicyOperation.RESTORE,
                resource=backup_resource(restore.backup_id),
                classification=Classification(backup.classification) if backup else None,
                source_system=backup.source_system if backup else None,
                mfa_verified=mfa_verified,
                restores_by_key_last_hour=by_key.count,
                restores_last_hour=overall.count,
                audit_details={"restore_id": str(restore.id)},
            ),
        )
        decision = outcome.decision
        if decision.allowed:
            return None, decision.requires_approval, outcome.event
        error = policy_error(decision)
        if isinstance(error, RateLimited):
            oldest = by_key.oldest if decision.rule == BuiltinRule.P5.value else overall.oldest
            if oldest is not None:
                error.retry_after_seconds = max(
                    1, int((oldest + RATE_WINDOW - now).total_seconds())
                )
        return error, False, outcome.event

    @staticmethod
    def _denied_event(
        principal: Principal, context: RequestContext, restore: RestoreRequest, error: SsbgError
    ) -> AuditEvent:
        return AuditEvent.by(
            principal,
            context,
            AuditAction.RESTORE_DENIED,
            restore_resource(restore.id),
            AuditResult.DENIED,
            backup_id=str(restore.backup_id),
            code=error.code,
            rule=error.details.get("rule"),
            reason_category=error.details.get("reason_category"),
        )

    # -- verify and complete ----------------------------------------------------------------

    async def _verify_and_complete(
        self,
        principal: Principal,
        context: RequestContext,
        restore: RestoreRequest,
        backup: BackupMetadata,
        *,
        issue_token: bool,
    ) -> RestoreOutcome:
        renewal = asyncio.create_task(self._keep_lease(restore.id))
        try:
            await self._verify(backup)
        except SsbgError as error:
            quarantine = isinstance(error, IntegrityFailure)
            await asyncio.shield(
                self._fail(principal, context, restore, backup, error.code, quarantine=quarantine)
            )
            raise
        except BaseException:
            # Cancelled (the client went away) or a bug: the backup is not suspect.
            await asyncio.shield(
                self._fail(principal, context, restore, backup, "INTERRUPTED", quarantine=False)
            )
            raise
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        return await self._complete(principal, context, restore, backup, issue_token=issue_token)

    async def _usable_private_key(
        self, tx: UnitOfWork, backup: BackupMetadata
    ) -> ec.EllipticCurvePrivateKey:
        """The backup's key-encryption key. Its status is re-read from the database every
        time, so a version destroyed on any replica is refused here (410)."""
        key_version = await tx.key_versions.get_or_none(backup.key_version)
        if key_version is None or key_version.status == KeyVersionStatus.DESTROYED.value:
            raise CryptoShredded()
        return await asyncio.to_thread(self._keys.load_private_key, backup.key_version)

    async def _decryptor(self, tx: UnitOfWork, backup: BackupMetadata) -> ObjectDecryptor:
        private_key = await self._usable_private_key(tx, backup)
        try:
            wrapped = await self._store.read_bytes(backup.wrapped_dek_ref)
        except ObjectMissing:
            raise IntegrityFailure("The backup's wrapped key is missing from the store.") from None
        return ObjectDecryptor(
            dek_resolver_for(wrapped, private_key, expected_key_version=backup.key_version),
            expected_backup_id=backup.id,
        )

    def _chunk_size(self, backup: BackupMetadata) -> int:
        return (backup.segment_size + 16) * READ_CHUNK_SEGMENTS

    async def _ciphertext(self, backup: BackupMetadata) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._store.read_stream(
                backup.storage_ref,
                self._chunk_size(backup),
                # The header alone first, so every later chunk starts on a segment boundary
                # and is decrypted in place.
                first_chunk_size=ObjectHeader.encoded_length(backup.key_version),
            ):
                yield chunk
        except ObjectMissing:
            raise IntegrityFailure("The backup's ciphertext is missing from the store.") from None

    async def _verify(self, backup: BackupMetadata) -> None:
        async with self._db.transaction(write=False) as tx:
            decryptor = await self._decryptor(tx, backup)
        verified = await verify_object(self._ciphertext(backup), decryptor)
        if (
            verified.checksum_ciphertext != backup.checksum_ciphertext
            or verified.checksum_plaintext != backup.checksum_plaintext
            or verified.plaintext_bytes != backup.original_size
            or verified.ciphertext_bytes != backup.encrypted_size
        ):
            raise IntegrityFailure("The backup does not match its recorded checksums.")

    async def _keep_lease(self, restore_id: UUID) -> None:
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            with contextlib.suppress(SsbgError):
                async with self._db.transaction(write=True) as tx:
                    await tx.restores.renew_lease(restore_id, self._clock.now() + self._lease)

    async def _complete(
        self,
        principal: Principal,
        context: RequestContext,
        restore: RestoreRequest,
        backup: BackupMetadata,
        *,
        issue_token: bool,
    ) -> RestoreOutcome:
        now = self._clock.now()
        token = secrets.token_urlsafe(TOKEN_BYTES) if issue_token else None
        values: dict[str, Any] = {
            "status": RestoreStatus.COMPLETED.value,
            "updated_at": now,
            "completed_at": now,
            "lease_expires_at": None,
        }
        if token is not None:
            values |= {
                "token_hash": hash_token(token),
                "token_issued_at": now,
                "token_expires_at": now + self._token_ttl,
            }
        async with self._db.transaction(write=True) as tx:
            check_restore_transition(RestoreStatus.VERIFYING, RestoreStatus.COMPLETED)
            completed = await tx.restores.change_status(
                restore.id, RestoreStatus.VERIFYING, **values
            )
            if completed is None:
                raise InvalidStateTransition("The restore request changed status meanwhile.")
            await self._trail.append(
                tx,
                _key_unwrap_event(principal, context, backup, restore),
            )
            await self._trail.append(
                tx,
                AuditEvent.by(
                    principal,
                    context,
                    AuditAction.RESTORE_COMPLETE,
                    restore_resource(restore.id),
                    backup_id=str(backup.id),
                    verified_bytes=backup.original_size,
                    token_issued=token is not None,
                    token_expires_at=values["token_expires_at"].isoformat() if token else None,
                ),
            )
        return RestoreOutcome(completed, token)

    async def _fail(
        self,
        principal: Principal,
        context: RequestContext,
        restore: RestoreRequest,
        backup: BackupMetadata,
        reason: str,
        *,
        quarantine: bool,
    ) -> None:
        """Record a failed verification; quarantine the backup on an integrity failure."""
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            if quarantine:
                await self._quarantine_in(tx, principal, context, backup, restore)
            failed = await tx.restores.change_status(
                restore.id,
                RestoreStatus.VERIFYING,
                status=RestoreStatus.FAILED.value,
                failure_reason=reason,
                lease_expires_at=None,
                updated_at=now,
            )
            if failed is None:
                return
            await self._trail.append(
                tx,
                _failed_event(
                    principal, context, restore.id, backup.id, reason, quarantined=quarantine
                ),
            )
        log.warning("restore_failed", restore_id=str(restore.id), reason=reason)

    async def _quarantine_in(
        self,
        tx: UnitOfWork,
        principal: Principal,
        context: RequestContext,
        backup: BackupMetadata,
        restore: RestoreRequest,
        **details: str,
    ) -> None:
        """``ACTIVE → QUARANTINED`` after an integrity failure (transition row + audit)."""
        await self._backups.transition_in(
            tx,
            backup.id,
            BackupStatus.ACTIVE,
            BackupStatus.QUARANTINED,
            principal=principal,
            context=context,
            result=AuditResult.FAILED,
            reason=IntegrityFailure.code,
            details={"restore_id": str(restore.id), **details},
        )

    # -- approval -------------------------------------------------------------------------

    async def approve(
        self, principal: Principal, context: RequestContext, restore_id: UUID
    ) -> RestoreRequest:
        """Approve a ``PENDING_APPROVAL`` request of someone else (the route demands MFA),
        then run the same decrypt-and-verify as a direct restore. The requester collects the
        download token afterwards (``issue_token``)."""
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            restore = await self._pending_for_decision(tx, restore_id)
            problem = await self._four_eyes(tx, principal, context, restore)
            backup: BackupMetadata | None = None
            events: list[AuditEvent] = []
            if problem is None:
                level = await self._lock_admission(tx)
                backup = await tx.backups.get_or_none(restore.backup_id)
                problem = None if level is IncidentLevel.LOCKDOWN else _backup_problem(backup)
                if problem is None:
                    problem, _approval, policy_event = await self._decide(
                        tx,
                        principal,
                        context,
                        backup,
                        restore,
                        mfa_verified=True,
                        exclude=restore.id,
                    )
                    events.append(policy_event)
                if problem is None:
                    check_restore_transition(
                        RestoreStatus.PENDING_APPROVAL, RestoreStatus.VERIFYING
                    )
                    approved = await tx.restores.change_status(
                        restore.id,
                        RestoreStatus.PENDING_APPROVAL,
                        status=RestoreStatus.VERIFYING.value,
                        approved_by=principal.key_id,
                        approved_at=now,
                        lease_expires_at=now + self._lease,
                        updated_at=now,
                    )
                    if approved is None:
                        raise InvalidStateTransition(
                            "The restore request changed status meanwhile."
                        )
                    restore = approved
                events.append(
                    AuditEvent.by(
                        principal,
                        context,
                        AuditAction.RESTORE_APPROVED,
                        restore_resource(restore.id),
                        AuditResult.SUCCESS if problem is None else AuditResult.DENIED,
                        requested_by=str(restore.requested_by),
                        code=problem.code if problem else None,
                    )
                )
            for event in events:
                await self._trail.append(tx, event)
        if problem is not None:
            raise problem
        assert backup is not None
        outcome = await self._verify_and_complete(
            principal, context, restore, backup, issue_token=False
        )
        return outcome.restore

    async def reject(
        self, principal: Principal, context: RequestContext, restore_id: UUID, reason: str
    ) -> RestoreRequest:
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            restore = await self._pending_for_decision(tx, restore_id)
            problem = await self._four_eyes(tx, principal, context, restore)
            if problem is None:
                check_restore_transition(RestoreStatus.PENDING_APPROVAL, RestoreStatus.REJECTED)
                rejected = await tx.restores.change_status(
                    restore.id,
                    RestoreStatus.PENDING_APPROVAL,
                    status=RestoreStatus.REJECTED.value,
                    rejected_by=principal.key_id,
                    rejected_at=now,
                    rejection_reason=reason,
                    updated_at=now,
                )
                if rejected is None:
                    raise InvalidStateTransition("The restore request changed status meanwhile.")
                restore = rejected
                await self._trail.append(
                    tx,
                    AuditEvent.by(
                        principal,
                        context,
                        AuditAction.RESTORE_REJECTED,
                        restore_resource(restore.id),
                        requested_by=str(restore.requested_by),
                        reason=reason,
                    ),
                )
        if problem is not None:
            raise problem
        return restore

    async def _pending_for_decision(self, tx: UnitOfWork, restore_id: UUID) -> RestoreRequest:
        restore = await tx.restores.get_for_update_or_none(restore_id)
        if restore is None:
            raise RestoreNotFound()
        if restore.status != RestoreStatus.PENDING_APPROVAL.value:
            raise InvalidStateTransition(
                f"Only a PENDING_APPROVAL request can be decided; this one is {restore.status}.",
                {"status": restore.status},
            )
        return restore

    async def _four_eyes(
        self,
        tx: UnitOfWork,
        principal: Principal,
        context: RequestContext,
        restore: RestoreRequest,
    ) -> SsbgError | None:
        """Nobody decides their own request; the refusal is recorded (it commits although the
        call then fails)."""
        if restore.requested_by != principal.key_id:
            return None
        await self._trail.append(
            tx,
            AuditEvent.by(
                principal,
                context,
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

    # -- reads ----------------------------------------------------------------------------

    async def get_restore(self, restore_id: UUID) -> RestoreRequest:
        async with self._db.transaction(write=False) as tx:
            restore = await tx.restores.get_or_none(restore_id)
        if restore is None:
            raise RestoreNotFound()
        return restore

    # -- download tokens ------------------------------------------------------------------

    async def issue_token(
        self,
        principal: Principal,
        context: RequestContext,
        restore_id: UUID,
        *,
        mfa_token: str | None = None,
    ) -> RestoreOutcome:
        """A fresh token for the requester's completed (or expired) restore; policy, incident
        level and MFA are checked again. Under quarantine, a restore nobody approved goes back
        to ``PENDING_APPROVAL`` instead (returned without a token)."""
        mfa_verified = await self._verify_mfa_if_given(principal, context, mfa_token)
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            restore = await self._own_restore(tx, principal, restore_id)
            status = RestoreStatus(restore.status)
            level = await self._lock_admission(tx)
            if status not in TOKEN_STATUSES and level is not IncidentLevel.LOCKDOWN:
                raise InvalidStateTransition(
                    f"No download token for a {status.value} restore request.",
                    {"status": status.value},
                )
            backup = await tx.backups.get_or_none(restore.backup_id)
            problem = None if level is IncidentLevel.LOCKDOWN else _backup_problem(backup)
            approval = False
            events: list[AuditEvent] = []
            if problem is None:
                problem, approval, policy_event = await self._decide(
                    tx,
                    principal,
                    context,
                    backup,
                    restore,
                    mfa_verified=mfa_verified,
                    exclude=restore.id,
                )
                events.append(policy_event)
            if problem is None and backup is not None:
                try:
                    await self._usable_private_key(tx, backup)
                except (CryptoShredded, KeyUnavailable) as unusable:
                    problem = unusable
            token: str | None = None
            if problem is None and approval and restore.approved_by is None:
                restore = await self._park_for_approval(tx, restore, status, now)
                action = AuditAction.RESTORE_REQUEST
            elif problem is None:
                token = secrets.token_urlsafe(TOKEN_BYTES)
                issued = await tx.restores.change_status(
                    restore.id,
                    status,
                    status=RestoreStatus.COMPLETED.value,
                    token_hash=hash_token(token),
                    token_issued_at=now,
                    token_expires_at=now + self._token_ttl,
                    updated_at=now,
                )
                if issued is None:
                    raise InvalidStateTransition("The restore request changed status meanwhile.")
                restore = issued
                action = AuditAction.RESTORE_COMPLETE
            else:
                action = AuditAction.RESTORE_DENIED
            events.append(
                AuditEvent.by(
                    principal,
                    context,
                    action,
                    restore_resource(restore.id),
                    AuditResult.SUCCESS if problem is None else AuditResult.DENIED,
                    backup_id=str(restore.backup_id),
                    token_issued=token is not None,
                    awaiting_approval=restore.status == RestoreStatus.PENDING_APPROVAL.value,
                    code=problem.code if problem else None,
                )
            )
            for event in events:
                await self._trail.append(tx, event)
        if problem is not None:
            raise problem
        return RestoreOutcome(restore, token)

    async def _park_for_approval(
        self, tx: UnitOfWork, restore: RestoreRequest, status: RestoreStatus, now: datetime
    ) -> RestoreRequest:
        """Incident level 2 arrived after this restore completed: it needs approval now."""
        check_restore_transition(status, RestoreStatus.PENDING_APPROVAL)
        parked = await tx.restores.change_status(
            restore.id,
            status,
            status=RestoreStatus.PENDING_APPROVAL.value,
            token_hash=None,
            token_expires_at=None,
            updated_at=now,
        )
        if parked is None:
            raise InvalidStateTransition("The restore request changed status meanwhile.")
        return parked

    async def _own_restore(
        self, tx: UnitOfWork, principal: Principal, restore_id: UUID
    ) -> RestoreRequest:
        """The requester's own request; anybody else's is reported as not found."""
        restore = await tx.restores.get_for_update_or_none(restore_id)
        if restore is None or restore.requested_by != principal.key_id:
            raise RestoreNotFound()
        return restore

    # -- download -------------------------------------------------------------------------

    async def open_download(
        self,
        principal: Principal,
        context: RequestContext,
        restore_id: UUID,
        presented_token: str | None,
    ) -> RestoreDownload:
        """Check the requester, the token and the gateway's state; record the download
        (``KEY_UNWRAP`` + ``RESTORE_DOWNLOAD``, or the refusal); return the plaintext stream,
        decrypted segment by segment as it is sent."""
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            restore = await tx.restores.get_for_update_or_none(restore_id)
            if restore is None:
                raise RestoreNotFound()
            problem = await self._download_problem(tx, principal, restore, presented_token, now)
            backup = await tx.backups.get_or_none(restore.backup_id)
            decryptor: ObjectDecryptor | None = None
            if problem is None:
                problem = _backup_problem(backup)
            if problem is None and backup is not None:
                try:
                    decryptor = await self._decryptor(tx, backup)
                except SsbgError as unusable:
                    problem = unusable
            if problem is None and backup is not None:
                await tx.restores.change_status(
                    restore.id,
                    RestoreStatus.COMPLETED,
                    downloads=restore.downloads + 1,
                    updated_at=now,
                )
                await self._trail.append(
                    tx,
                    _key_unwrap_event(principal, context, backup, restore),
                )
            await self._trail.append(
                tx,
                AuditEvent.by(
                    principal,
                    context,
                    AuditAction.RESTORE_DOWNLOAD,
                    restore_resource(restore.id),
                    AuditResult.SUCCESS if problem is None else AuditResult.DENIED,
                    backup_id=str(restore.backup_id),
                    code=problem.code if problem else None,
                ),
            )
        if problem is not None:
            raise problem
        assert backup is not None
        assert decryptor is not None
        return RestoreDownload(
            filename=backup.original_filename or f"{backup.id}.bin",
            size=int(backup.original_size or 0),
            checksum_plaintext=backup.checksum_plaintext or "",
            content_type=backup.content_type,
            chunks=self._plaintext(principal, context, restore, backup, decryptor),
        )

    async def _download_problem(
        self,
        tx: UnitOfWork,
        principal: Principal,
        restore: RestoreRequest,
        presented_token: str | None,
        now: datetime,
    ) -> SsbgError | None:
        """Why this download may not start (its side effects commit with the refusal)."""
        if restore.requested_by != principal.key_id or not (
            presented_token and token_matches(presented_token, restore.token_hash)
        ):
            # Another key, or a wrong token: indistinguishable from a missing restore.
            return RestoreNotFound()
        level = await self._lock_admission(tx)
        if level is IncidentLevel.LOCKDOWN:
            return IncidentLockdown(
                details={
                    "rule": BuiltinRule.INCIDENT.value,
                    "reason_category": ReasonCategory.INCIDENT_LOCKDOWN.value,
                }
            )
        status = RestoreStatus(restore.status)
        if status is RestoreStatus.COMPLETED and token_expired(restore.token_expires_at, now):
            await tx.restores.change_status(
                restore.id, status, status=RestoreStatus.EXPIRED.value, updated_at=now
            )
            return RestoreTokenExpired()
        if status is RestoreStatus.EXPIRED:
            return RestoreTokenExpired()
        if status is not RestoreStatus.COMPLETED:
            return InvalidStateTransition(
                f"A {status.value} restore cannot be downloaded.", {"status": status.value}
            )
        if level is IncidentLevel.QUARANTINE and restore.approved_by is None:
            await self._park_for_approval(tx, restore, status, now)
            return PolicyDenied(
                "Incident level QUARANTINE: key unwrap is frozen until an admin approves this "
                "restore; collect a new token after the approval.",
                {
                    "rule": BuiltinRule.INCIDENT.value,
                    "reason_category": ReasonCategory.INCIDENT_QUARANTINE.value,
                },
            )
        return None

    async def _plaintext(
        self,
        principal: Principal,
        context: RequestContext,
        restore: RestoreRequest,
        backup: BackupMetadata,
        decryptor: ObjectDecryptor,
    ) -> AsyncIterator[bytes]:
        try:
            async for segment in decrypt_object(self._ciphertext(backup), decryptor):
                yield segment
        except IntegrityFailure:
            # The object changed since it was verified: quarantine it, and let the exception
            # abort the response so the client never takes a short file for a whole one.
            await asyncio.shield(
                self._quarantine_after_download(principal, context, restore, backup)
            )
            raise

    async def _quarantine_after_download(
        self,
        principal: Principal,
        context: RequestContext,
        restore: RestoreRequest,
        backup: BackupMetadata,
    ) -> None:
        async with self._db.transaction(write=True) as tx:
            await self._quarantine_in(tx, principal, context, backup, restore, during="download")
            await self._trail.append(
                tx,
                _failed_event(
                    principal,
                    context,
                    restore.id,
                    backup.id,
                    IntegrityFailure.code,
                    quarantined=True,
                    during="download",
                ),
            )
        log.error("restore_download_integrity_failure", restore_id=str(restore.id))

    # -- recovery -------------------------------------------------------------------------

    async def fail_interrupted(self) -> list[UUID]:
        """``VERIFYING`` requests whose gateway died (lease lapsed) become ``FAILED``; when
        several replicas sweep at once, the compare-and-set lets exactly one record each."""
        now = self._clock.now()
        async with self._db.transaction(write=False) as tx:
            lapsed = await tx.restores.list_lapsed_verifying(now, 100)
        failed: list[UUID] = []
        for restore_id in lapsed:
            async with self._db.transaction(write=True) as tx:
                changed = await tx.restores.change_status(
                    restore_id,
                    RestoreStatus.VERIFYING,
                    lease_lapsed_before=now,
                    status=RestoreStatus.FAILED.value,
                    failure_reason="INTERRUPTED",
                    lease_expires_at=None,
                    updated_at=now,
                )
                if changed is None:
                    continue
                await self._trail.append(
                    tx,
                    _failed_event(
                        None, SYSTEM_CONTEXT, restore_id, changed.backup_id, "INTERRUPTED"
                    ),
                )
                failed.append(restore_id)
        return failed
