"""Backups (SPEC §3, §5, §6): ingest, read, list, status, delete.

An ingest leaves evidence whatever happens, in short explicit transactions — none is open
while the payload streams:

1. *start* — policy decision, ``PROCESSING`` record with a lease, first transition,
   ``POLICY_CHECK_ALLOW`` + ``BACKUP_START`` + ``KEY_WRAP``; committed. (A denial commits only
   ``POLICY_CHECK_DENY`` and raises.)
2. *stream* — the body is encrypted segment by segment into ``data.enc`` (see
   :mod:`ssbg.infrastructure.crypto.stream_encryption`), then ``dek.wrapped`` is stored; a
   background task renews the lease meanwhile.
3. *complete* — compare-and-set ``PROCESSING → ACTIVE`` with sizes and checksums,
   transition, ``BACKUP_STORED`` + ``BACKUP_COMPLETE``; committed. Only then does the caller
   get its 201.

Any failure in 2 or 3 moves the record ``PROCESSING → FAILED`` (compare-and-set, so a record
that did become ``ACTIVE`` is never touched), appends ``BACKUP_FAILED`` with a reason category,
and only then removes whatever reached the store. If even that cannot be recorded (the
database is down), the lease lapses and start-up recovery finishes the job.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.backup_lifecycle import check_backup_transition
from ssbg.domain.enums import (
    AuditAction,
    AuditResult,
    BackupFailureReason,
    BackupStatus,
    Classification,
    PolicyOperation,
)
from ssbg.domain.errors import (
    BackupNotFound,
    ClientDisconnected,
    Conflict,
    DatabaseUnavailable,
    InternalError,
    InvalidStateTransition,
    KeyUnavailable,
    PayloadTooLarge,
    SsbgError,
    StorageUnavailable,
    ValidationFailed,
)
from ssbg.domain.identity import Principal, RequestContext
from ssbg.domain.permissions import Permission, is_allowed
from ssbg.domain.queries import BackupCursor, BackupFilters, BackupViewer
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.object_format import (
    FORMAT_VERSION,
    SEGMENT_ALGORITHM,
    WRAP_ALGORITHM,
    ObjectHeader,
    SegmentSealer,
    generate_dek,
    wrap_dek,
)
from ssbg.infrastructure.crypto.stream_encryption import (
    EncryptionFailed,
    SealedStream,
    encrypt_stream,
)
from ssbg.infrastructure.db.models import BackupMetadata, BackupStatusTransition, KeyVersion
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.infrastructure.storage.layout import backup_prefix, data_key, wrapped_dek_key
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import AuthService
from ssbg.services.policy_enforcement import PolicyCheck, PolicyEnforcer, policy_error
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork
from ssbg.settings import Settings

log = structlog.get_logger("ssbg.backups")

MAX_PAGE = 100


@dataclass(frozen=True)
class BackupSubmission:
    """A validated request to store a backup (the payload travels separately)."""

    classification: Classification | None
    source_system: str
    description: str | None
    original_filename: str | None
    content_type: str
    declared_size: int | None = None  # Content-Length of a raw body, when known


@dataclass(frozen=True)
class BackupPage:
    items: Sequence[BackupMetadata]
    next_cursor: BackupCursor | None


@dataclass(frozen=True)
class BackupStatusView:
    backup: BackupMetadata
    transitions: Sequence[BackupStatusTransition]


class LeaseLost(Exception):
    """Another replica failed this PROCESSING backup after its lease lapsed."""


def viewer_of(principal: Principal) -> BackupViewer:
    return BackupViewer(
        key_id=principal.key_id, sees_all=is_allowed(principal.role, Permission.BACKUP_READ_ALL)
    )


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


class BackupService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        settings: Settings,
        store: ObjectStore,
        policy: PolicyEnforcer,
        auth: AuthService,
    ) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock
        self._settings = settings
        self._store = store
        self._policy = policy
        self._auth = auth
        self._lease = timedelta(seconds=settings.backup_lease_seconds)
        self._public_keys: dict[str, ec.EllipticCurvePublicKey] = {}

    # -- ingest -----------------------------------------------------------------------------

    async def find_replay_or_none(
        self, principal: Principal, idempotency_key: str | None
    ) -> BackupMetadata | None:
        """The backup this API key already created with ``idempotency_key``, if any.

        ``Conflict`` while that first request is still streaming. A failed attempt releases
        its key, so a retry after a failure stores the backup for real.
        """
        if idempotency_key is None:
            return None
        async with self._db.transaction(write=False) as tx:
            existing = await tx.backups.get_by_idempotency_key_or_none(
                principal.key_id, idempotency_key
            )
        if existing is not None and existing.status == BackupStatus.PROCESSING.value:
            raise Conflict(
                "A backup with this Idempotency-Key is still being processed.",
                {"backup_id": str(existing.id)},
            )
        return existing

    async def create_backup(
        self,
        principal: Principal,
        context: RequestContext,
        submission: BackupSubmission,
        payload: AsyncIterator[bytes],
        *,
        idempotency_key: str | None = None,
        mfa_token: str | None = None,
    ) -> BackupMetadata:
        """Store ``payload`` encrypted; return the ``ACTIVE`` record (see the module doc)."""
        classification = self._resolve_classification(submission.classification)
        limit = self._settings.max_upload_bytes
        if submission.declared_size is not None and submission.declared_size > limit:
            raise PayloadTooLarge(
                "The payload is larger than this gateway accepts.", {"max_upload_bytes": limit}
            )
        first = await self._first_chunk(payload)
        mfa_verified = False
        if mfa_token:
            await self._auth.verify_mfa(principal, mfa_token, context)
            mfa_verified = True
        dek = generate_dek()
        try:
            record, wrapped = await self._start(
                principal,
                context,
                submission,
                classification,
                idempotency_key=idempotency_key,
                mfa_verified=mfa_verified,
                dek=dek,
            )
        except Conflict:
            replay = await self.find_replay_or_none(principal, idempotency_key)
            if replay is None:
                raise
            return replay
        try:
            sealed = await self._store_objects(record, dek, wrapped, _prepend(first, payload))
            return await self._complete(principal, context, record, sealed)
        except BaseException as exc:
            reason, error = _failure_of(exc)
            await asyncio.shield(self._fail(principal, context, record.id, reason))
            if error is not None and error is not exc:
                raise error from None
            raise

    def _resolve_classification(self, given: Classification | None) -> Classification:
        if given is not None:
            return given
        if self._settings.require_classification:
            raise ValidationFailed(details={"classification": "Field required"})
        return self._settings.default_classification

    @staticmethod
    async def _first_chunk(payload: AsyncIterator[bytes]) -> bytes:
        """The first non-empty chunk; an empty payload is a validation error (no record)."""
        async for chunk in payload:
            if chunk:
                return chunk
        raise ValidationFailed("The payload is empty.", {"file": "The payload is empty."})

    def _public_key(self, key_version: KeyVersion) -> ec.EllipticCurvePublicKey:
        cached = self._public_keys.get(key_version.version)
        if cached is None:
            try:
                loaded = serialization.load_pem_public_key(key_version.public_key_pem.encode())
            except ValueError:
                raise KeyUnavailable("The active key version's public key is unusable.") from None
            if not isinstance(loaded, ec.EllipticCurvePublicKey):
                raise KeyUnavailable("The active key version is not an EC key.")
            cached = self._public_keys[key_version.version] = loaded
        return cached

    async def _start(
        self,
        principal: Principal,
        context: RequestContext,
        submission: BackupSubmission,
        classification: Classification,
        *,
        idempotency_key: str | None,
        mfa_verified: bool,
        dek: bytes,
    ) -> tuple[BackupMetadata, bytes]:
        backup_id = uuid4()
        resource = backup_resource(backup_id)
        check = PolicyCheck(
            operation=PolicyOperation.BACKUP,
            resource=resource,
            classification=classification,
            source_system=submission.source_system,
            mfa_verified=mfa_verified,
        )
        async with self._db.transaction(write=True) as tx:
            outcome = await self._policy.decide(tx, principal, context, check)
            if outcome.decision.allowed:
                active = await tx.key_versions.get_active_or_none()
                if active is None:
                    raise KeyUnavailable("No active key version.")
                wrapped = await asyncio.to_thread(
                    wrap_dek, dek, self._public_key(active), backup_id, active.version
                )
                now = self._clock.now()
                record = BackupMetadata(
                    id=backup_id,
                    status=BackupStatus.PROCESSING.value,
                    classification=classification.value,
                    source_system=submission.source_system,
                    original_filename=submission.original_filename,
                    description=submission.description,
                    content_type=submission.content_type,
                    key_version=active.version,
                    format_version=FORMAT_VERSION,
                    segment_size=self._settings.segment_size,
                    storage_backend=self._store.backend_name,
                    storage_ref=data_key(backup_id),
                    wrapped_dek_ref=wrapped_dek_key(backup_id),
                    created_by=principal.key_id,
                    created_at=now,
                    updated_at=now,
                    idempotency_key=idempotency_key,
                    lease_expires_at=now + self._lease,
                    cleanup_pending=False,
                )
                await tx.backups.insert(
                    record,
                    _transition(
                        record.id,
                        1,
                        None,
                        BackupStatus.PROCESSING,
                        principal,
                        now,
                        AuditAction.BACKUP_START.value,
                    ),
                )
                await self._trail.append(tx, outcome.event)
                await self._trail.append(
                    tx,
                    AuditEvent.by(
                        principal,
                        context,
                        AuditAction.BACKUP_START,
                        resource,
                        classification=record.classification,
                        source_system=record.source_system,
                        original_filename=record.original_filename,
                        content_type=record.content_type,
                        storage_backend=record.storage_backend,
                        key_version=record.key_version,
                        idempotency_key_used=idempotency_key is not None,
                        to_status=BackupStatus.PROCESSING.value,
                    ),
                )
                await self._trail.append(
                    tx,
                    AuditEvent.by(
                        principal,
                        context,
                        AuditAction.KEY_WRAP,
                        resource,
                        key_version=active.version,
                        algorithm=WRAP_ALGORITHM,
                        format_version=FORMAT_VERSION,
                    ),
                )
            else:
                await self._trail.append(tx, outcome.event)
        if outcome.decision.denied:
            raise policy_error(outcome.decision)
        return record, wrapped

    async def _store_objects(
        self, record: BackupMetadata, dek: bytes, wrapped: bytes, payload: AsyncIterator[bytes]
    ) -> SealedStream:
        header = ObjectHeader(record.id, record.key_version, record.segment_size).encode()
        sealer = SegmentSealer(dek, header)
        lease = asyncio.create_task(self._keep_lease(record.id))
        try:
            async with self._store.open_writer(record.storage_ref) as writer:
                sealed = await encrypt_stream(
                    self._while_leased(payload, lease),
                    sealer=sealer,
                    header=header,
                    writer=writer,
                    segment_size=record.segment_size,
                    max_plaintext_bytes=self._settings.max_upload_bytes,
                )
            # Written last: until data.enc is complete, a failure leaves no object at all.
            await self._store.put_bytes(record.wrapped_dek_ref, wrapped)
        finally:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease
        return sealed

    @staticmethod
    async def _while_leased(
        payload: AsyncIterator[bytes], lease: "asyncio.Task[None]"
    ) -> AsyncIterator[bytes]:
        async for chunk in payload:
            if lease.done():
                raise LeaseLost()
            yield chunk

    async def _keep_lease(self, backup_id: UUID) -> None:
        """Renew the lease every third of its length; return when it was lost."""
        interval = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            now = self._clock.now()
            try:
                async with self._db.transaction(write=True) as tx:
                    held = await tx.backups.renew_lease(backup_id, now + self._lease, now)
            except DatabaseUnavailable:
                continue  # the completion's compare-and-set will tell whether we kept it
            if not held:
                return

    async def _complete(
        self,
        principal: Principal,
        context: RequestContext,
        record: BackupMetadata,
        sealed: SealedStream,
    ) -> BackupMetadata:
        now = self._clock.now()
        stored = AuditEvent.by(
            principal,
            context,
            AuditAction.BACKUP_STORED,
            backup_resource(record.id),
            storage_backend=record.storage_backend,
            storage_ref=record.storage_ref,
            wrapped_dek_ref=record.wrapped_dek_ref,
            encrypted_size=sealed.encrypted_size,
            checksum_ciphertext=sealed.checksum_ciphertext,
            segments=sealed.segments,
            segment_algorithm=SEGMENT_ALGORITHM,
        )
        async with self._db.transaction(write=True) as tx:
            done = await self.transition_in(
                tx,
                record.id,
                BackupStatus.PROCESSING,
                BackupStatus.ACTIVE,
                principal=principal,
                context=context,
                action=AuditAction.BACKUP_COMPLETE,
                reason=AuditAction.BACKUP_COMPLETE.value,
                values={
                    "original_size": sealed.original_size,
                    "encrypted_size": sealed.encrypted_size,
                    "checksum_plaintext": sealed.checksum_plaintext,
                    "checksum_ciphertext": sealed.checksum_ciphertext,
                    "completed_at": now,
                    "lease_expires_at": None,
                },
                details={
                    "original_size": sealed.original_size,
                    "checksum_plaintext": sealed.checksum_plaintext,
                    "classification": record.classification,
                    "key_version": record.key_version,
                },
                preceding_events=[stored],
            )
            if done is None:
                raise LeaseLost()
        return done

    async def _fail(
        self,
        principal: Principal,
        context: RequestContext,
        backup_id: UUID,
        reason: BackupFailureReason,
    ) -> None:
        """PROCESSING → FAILED with ``BACKUP_FAILED``, then remove the objects. Never raises."""
        try:
            async with self._db.transaction(write=True) as tx:
                failed = await self.fail_processing_in(
                    tx, backup_id, reason, principal=principal, context=context
                )
        except SsbgError as exc:
            log.error("backup_failure_not_recorded", backup_id=str(backup_id), code=exc.code)
            return
        if failed is not None:  # else moved by someone else (recovery after a lapsed lease)
            await self.remove_objects(backup_id)

    async def fail_processing_in(
        self,
        tx: UnitOfWork,
        backup_id: UUID,
        reason: BackupFailureReason,
        *,
        principal: Principal | None,
        context: RequestContext,
        lease_lapsed_before: datetime | None = None,
    ) -> BackupMetadata | None:
        """``PROCESSING → FAILED`` (releasing the idempotency key, marking the objects for
        removal) with its ``BACKUP_FAILED`` entry, in ``tx``; ``None`` if no longer PROCESSING
        (or, with ``lease_lapsed_before``, if its lease has not lapsed)."""
        return await self.transition_in(
            tx,
            backup_id,
            BackupStatus.PROCESSING,
            BackupStatus.FAILED,
            principal=principal,
            context=context,
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
            await self._store.discard_prefix(backup_prefix(backup_id))
        except StorageUnavailable:
            log.warning("backup_objects_not_removed", backup_id=str(backup_id))
            return False
        try:
            async with self._db.transaction(write=True) as tx:
                await tx.backups.mark_cleaned(backup_id)
        except SsbgError:
            return False
        return True

    async def transition_in(
        self,
        tx: UnitOfWork,
        backup_id: UUID,
        current: BackupStatus,
        target: BackupStatus,
        *,
        principal: Principal | None,
        context: RequestContext,
        action: AuditAction = AuditAction.BACKUP_STATUS_CHANGE,
        result: AuditResult = AuditResult.SUCCESS,
        reason: str | None = None,
        values: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        lease_lapsed_before: datetime | None = None,
        preceding_events: Sequence[AuditEvent] = (),
    ) -> BackupMetadata | None:
        """Move a backup ``current → target`` inside the caller's transaction (SPEC §5).

        The state machine's check (``InvalidStateTransition`` for an illegal move), a
        compare-and-set of the status with ``values``, the ``backup_status_transitions`` row
        and the ``action`` audit entry — all in ``tx``, so they commit together or not at all.
        Returns ``None`` when another writer moved the backup first.

        ``preceding_events`` are appended just before the transition's own entry. Audit
        appends come after the row update on purpose: every writer locks the backup row
        before the audit chain head, so two writers never wait on each other in a cycle.
        """
        check_backup_transition(current, target)
        now = self._clock.now()
        changed = await tx.backups.change_status(
            backup_id,
            current,
            lease_lapsed_before=lease_lapsed_before,
            status=target.value,
            updated_at=now,
            **(values or {}),
        )
        if changed is None:
            return None
        sequence = await tx.backups.next_transition_sequence(backup_id)
        tx.backups.add_transition(
            _transition(backup_id, sequence, current, target, principal, now, reason)
        )
        await tx.backups.flush()
        for event in preceding_events:
            await self._trail.append(tx, event)
        await self._trail.append(
            tx,
            AuditEvent.by(
                principal,
                context,
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

    # -- reads ------------------------------------------------------------------------------

    async def get_backup(self, principal: Principal, backup_id: UUID) -> BackupMetadata:
        async with self._db.transaction(write=False) as tx:
            backup = await tx.backups.get_visible_or_none(viewer_of(principal), backup_id)
        if backup is None:
            raise BackupNotFound()
        return backup

    async def get_status(self, principal: Principal, backup_id: UUID) -> BackupStatusView:
        async with self._db.transaction(write=False) as tx:
            backup = await tx.backups.get_visible_or_none(viewer_of(principal), backup_id)
            if backup is None:
                raise BackupNotFound()
            transitions = await tx.backups.list_transitions(backup_id)
        return BackupStatusView(backup=backup, transitions=transitions)

    async def list_backups(
        self,
        principal: Principal,
        filters: BackupFilters,
        after: BackupCursor | None,
        limit: int,
    ) -> BackupPage:
        limit = max(1, min(limit, MAX_PAGE))
        async with self._db.transaction(write=False) as tx:
            rows = await tx.backups.list_visible(viewer_of(principal), filters, after, limit + 1)
        items = rows[:limit]
        next_cursor = (
            BackupCursor(created_at=items[-1].created_at, backup_id=items[-1].id)
            if len(rows) > limit
            else None
        )
        return BackupPage(items=items, next_cursor=next_cursor)

    # -- delete -----------------------------------------------------------------------------

    async def delete_backup(
        self,
        principal: Principal,
        context: RequestContext,
        backup_id: UUID,
        *,
        mfa_token: str | None = None,
    ) -> BackupMetadata:
        """``ACTIVE | QUARANTINED → DELETED``, then remove the ciphertext objects.

        The status change and ``BACKUP_DELETE`` commit first (with ``cleanup_pending``), so a
        backup is never ``ACTIVE`` without its objects; if the store cannot be reached the
        caller gets 503 and the sweep (or a repeated DELETE) removes the objects later.
        """
        mfa_verified = False
        if mfa_token:
            await self._auth.verify_mfa(principal, mfa_token, context)
            mfa_verified = True
        resource = backup_resource(backup_id)
        async with self._db.transaction(write=True) as tx:
            backup = await tx.backups.get_visible_or_none(viewer_of(principal), backup_id)
            if backup is None:
                raise BackupNotFound()
            current = BackupStatus(backup.status)
            retry_cleanup = current is BackupStatus.DELETED and backup.cleanup_pending
            if not retry_cleanup:
                check_backup_transition(current, BackupStatus.DELETED)
                outcome = await self._policy.decide(
                    tx,
                    principal,
                    context,
                    PolicyCheck(
                        operation=PolicyOperation.DELETE,
                        resource=resource,
                        classification=Classification(backup.classification),
                        source_system=backup.source_system,
                        mfa_verified=mfa_verified,
                    ),
                )
                if outcome.decision.allowed:
                    deleted = await self.transition_in(
                        tx,
                        backup_id,
                        current,
                        BackupStatus.DELETED,
                        principal=principal,
                        context=context,
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
                    if deleted is None:
                        raise InvalidStateTransition("The backup changed status meanwhile.")
                    backup = deleted
                else:
                    await self._trail.append(tx, outcome.event)
        if not retry_cleanup and outcome.decision.denied:
            raise policy_error(outcome.decision)
        if not await self.remove_objects(backup_id):
            raise StorageUnavailable(
                "The backup is DELETED but its ciphertext could not be removed yet; "
                "removal is retried automatically.",
                {"status": BackupStatus.DELETED.value, "cleanup_pending": True},
            )
        backup.cleanup_pending = False
        return backup


def _transition(
    backup_id: UUID,
    sequence: int,
    from_status: BackupStatus | None,
    to_status: BackupStatus,
    principal: Principal | None,
    at: datetime,
    reason: str | None = None,
) -> BackupStatusTransition:
    return BackupStatusTransition(
        id=uuid4(),
        backup_id=backup_id,
        sequence=sequence,
        from_status=from_status.value if from_status else None,
        to_status=to_status.value,
        reason=reason,
        actor_id=principal.key_id if principal else None,
        at=at,
    )


def _failure_of(exc: BaseException) -> tuple[BackupFailureReason, SsbgError | None]:
    """The reason category to record for ``exc`` and the error to give the caller
    (``None``: re-raise ``exc`` itself, e.g. a cancellation)."""
    if isinstance(exc, PayloadTooLarge):
        return BackupFailureReason.PAYLOAD_TOO_LARGE, exc
    if isinstance(exc, StorageUnavailable):
        return BackupFailureReason.STORAGE_UNAVAILABLE, exc
    if isinstance(exc, EncryptionFailed):
        return BackupFailureReason.ENCRYPTION_FAILED, exc
    if isinstance(exc, ClientDisconnected):
        return BackupFailureReason.CLIENT_DISCONNECTED, exc
    if isinstance(exc, ValidationFailed):
        return BackupFailureReason.INVALID_PAYLOAD, exc
    if isinstance(exc, DatabaseUnavailable):
        return BackupFailureReason.DATABASE_UNAVAILABLE, exc
    if isinstance(exc, LeaseLost):
        return BackupFailureReason.INTERRUPTED, InternalError(
            "The upload was interrupted; the backup was not stored."
        )
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
        return BackupFailureReason.INTERRUPTED, None
    log.error("backup_ingest_failed", error=type(exc).__name__)
    return BackupFailureReason.INTERNAL_ERROR, InternalError()
