"""Ingest (SPEC §3 Backups, §6): a backup leaves evidence whatever happens.

Short explicit transactions — none is open while the payload streams:

1. *start* — policy decision, ``PROCESSING`` record with a lease, first transition,
   ``POLICY_CHECK_ALLOW`` + ``BACKUP_START`` + ``KEY_WRAP``; committed. (A denial commits only
   ``POLICY_CHECK_DENY`` and raises.)
2. *stream* — the body is encrypted segment by segment into ``data.enc`` (see
   :mod:`ssbg.infrastructure.crypto.stream_encryption`; with ``compression=zstd`` each segment
   is compressed first, format version 2), then ``dek.wrapped`` is stored; a background task
   renews the lease meanwhile.
3. *complete* — compare-and-set ``PROCESSING → ACTIVE`` with sizes (``stored_size``: the
   segments' bodies as stored, compressed or not) and checksums (of the original plaintext and
   of the stored object), transition, ``BACKUP_STORED`` + ``BACKUP_COMPLETE``; committed.
   Only then does the caller get its 201.

An ``Idempotency-Key`` names one request, not just one backup: a request whose key was used
before is compared with what that key stored, before anything is stored
(:mod:`ssbg.services.backups.idempotency`). Two requests racing for a new key are settled by
the unique index on ``(created_by, idempotency_key)``; the loser takes the same comparison.

Any failure in 2 or 3 moves the record ``PROCESSING → FAILED`` (compare-and-set, so a record
that did become ``ACTIVE`` is never touched), appends ``BACKUP_FAILED`` with a reason category,
and only then removes whatever reached the store. If even that cannot be recorded (the
database is down), the lease lapses and start-up recovery finishes the job.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID, uuid4

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.enums import (
    AuditAction,
    BackupFailureReason,
    BackupStatus,
    Classification,
    Compression,
    PolicyOperation,
)
from ssbg.domain.errors import (
    ClientDisconnected,
    Conflict,
    DatabaseUnavailable,
    InternalError,
    KeyUnavailable,
    PayloadTooLarge,
    SsbgError,
    StorageUnavailable,
    ValidationFailed,
)
from ssbg.domain.identity import Actor
from ssbg.infrastructure import metrics
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.object_format import (
    FORMAT_VERSION,
    SEGMENT_ALGORITHM,
    WRAP_ALGORITHM,
    ObjectHeader,
    SegmentSealer,
    format_version_for,
    generate_dek,
    wrap_dek,
)
from ssbg.infrastructure.crypto.object_format_v2 import FramedSegmentSealer
from ssbg.infrastructure.crypto.segment_compression import SegmentCompressor
from ssbg.infrastructure.crypto.stream_encryption import (
    EncryptionFailed,
    SealedStream,
    SegmentSealing,
    encrypt_stream,
)
from ssbg.infrastructure.db.models import BackupMetadata, KeyVersion
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.infrastructure.storage.layout import data_key, wrapped_dek_key
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import AuthService
from ssbg.services.backups.idempotency import (
    BackupSubmission,
    IdempotentRequests,
    IngestOutcome,
)
from ssbg.services.backups.lifecycle import BackupLifecycle, new_transition
from ssbg.services.policy_enforcement import PolicyCheck, PolicyEnforcer, policy_error
from ssbg.services.unit_of_work import AppDatabase
from ssbg.settings import Settings

log = structlog.get_logger("ssbg.backups")


class LeaseLost(Exception):
    """Another replica failed this PROCESSING backup after its lease lapsed."""


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


class BackupIngest:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        settings: Settings,
        store: ObjectStore,
        policy: PolicyEnforcer,
        auth: AuthService,
        lifecycle: BackupLifecycle,
    ) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock
        self._settings = settings
        self._store = store
        self._policy = policy
        self._auth = auth
        self._lifecycle = lifecycle
        self._lease = timedelta(seconds=settings.backup_lease_seconds)
        self._public_keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._idempotency = IdempotentRequests(db, trail)

    async def create_backup(
        self,
        actor: Actor,
        submission: BackupSubmission,
        payload: AsyncIterator[bytes],
        *,
        idempotency_key: str | None = None,
        mfa_token: str | None = None,
    ) -> IngestOutcome:
        """Store ``payload`` encrypted and return the ``ACTIVE`` record, or the record an
        identical earlier request with ``idempotency_key`` stored (see the module doc)."""
        classification = self._resolve_classification(submission.classification)
        if idempotency_key is not None:
            existing = await self._idempotency.find(actor, idempotency_key)
            if existing is not None:
                return await self._idempotency.replay(
                    actor, existing, submission, classification, payload
                )
        limit = self._settings.max_upload_bytes
        if submission.declared_size is not None and submission.declared_size > limit:
            raise PayloadTooLarge(
                "The payload is larger than this gateway accepts.", {"max_upload_bytes": limit}
            )
        first = await self._first_chunk(payload)
        mfa_verified = False
        if mfa_token:
            await self._auth.verify_mfa(actor, mfa_token)
            mfa_verified = True
        dek = generate_dek()
        try:
            record, wrapped = await self._start(
                actor,
                submission,
                classification,
                idempotency_key=idempotency_key,
                mfa_verified=mfa_verified,
                dek=dek,
            )
        except Conflict:  # another request took this Idempotency-Key first
            if idempotency_key is None:
                raise
            existing = await self._idempotency.find(actor, idempotency_key)
            if existing is None:  # and failed since, releasing it: the client may retry
                raise
            rest = _prepend(first, payload)
            return await self._idempotency.replay(actor, existing, submission, classification, rest)
        try:
            sealed = await self._store_objects(
                record, dek, wrapped, _prepend(first, payload), submission.compression_level
            )
            stored = await self._complete(actor, record, sealed)
        except BaseException as exc:
            reason, error = _failure_of(exc)
            metrics.record_backup("failed")
            failed_here = await asyncio.shield(self._fail(actor, record.id, reason))
            if failed_here is False and error is not None:
                # Another replica failed it first, its lease lapsed: whatever this one then
                # ran into (its objects removed under it, say) follows from that.
                error = _lease_lost()
            if error is not None and error is not exc:
                raise error from None
            raise
        metrics.record_backup("success", sealed.original_size)
        return IngestOutcome(stored, replayed=False)

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
        actor: Actor,
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
            outcome = await self._policy.decide(tx, actor, check)
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
                    status=BackupStatus.PROCESSING,
                    classification=classification,
                    source_system=submission.source_system,
                    original_filename=submission.original_filename,
                    description=submission.description,
                    content_type=submission.content_type,
                    key_version=active.version,
                    format_version=format_version_for(submission.compression),
                    segment_size=self._settings.segment_size,
                    compression=submission.compression,
                    storage_backend=self._store.backend_name,
                    storage_ref=data_key(backup_id),
                    wrapped_dek_ref=wrapped_dek_key(backup_id),
                    created_by=actor.key_id,
                    created_at=now,
                    updated_at=now,
                    idempotency_key=idempotency_key,
                    lease_expires_at=now + self._lease,
                    cleanup_pending=False,
                )
                first = new_transition(
                    backup_id, 1, None, BackupStatus.PROCESSING, actor, now, "BACKUP_START"
                )
                await tx.backups.insert(record, first)
                await self._trail.append(tx, outcome.event)
                await self._trail.append(
                    tx,
                    AuditEvent.by(
                        actor,
                        AuditAction.BACKUP_START,
                        resource,
                        classification=classification.value,
                        source_system=record.source_system,
                        original_filename=record.original_filename,
                        content_type=record.content_type,
                        storage_backend=record.storage_backend,
                        key_version=record.key_version,
                        idempotency_key_used=idempotency_key is not None,
                        compression=submission.compression.value,
                        compression_level=_level_of(submission),
                        to_status=BackupStatus.PROCESSING.value,
                    ),
                )
                await self._trail.append(
                    tx,
                    AuditEvent.by(
                        actor,
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
            metrics.record_backup("denied")
            raise policy_error(outcome.decision)
        return record, wrapped

    async def _store_objects(
        self,
        record: BackupMetadata,
        dek: bytes,
        wrapped: bytes,
        payload: AsyncIterator[bytes],
        compression_level: int,
    ) -> SealedStream:
        header = ObjectHeader(
            record.id,
            record.key_version,
            record.segment_size,
            record.format_version,
            record.compression,
        ).encode()
        sealer: SegmentSealing = SegmentSealer(dek, header)
        if record.compression is Compression.ZSTD:
            sealer = FramedSegmentSealer(dek, header, SegmentCompressor(compression_level))
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
        self, actor: Actor, record: BackupMetadata, sealed: SealedStream
    ) -> BackupMetadata:
        now = self._clock.now()
        stored = AuditEvent.by(
            actor,
            AuditAction.BACKUP_STORED,
            backup_resource(record.id),
            storage_backend=record.storage_backend,
            storage_ref=record.storage_ref,
            wrapped_dek_ref=record.wrapped_dek_ref,
            encrypted_size=sealed.encrypted_size,
            checksum_ciphertext=sealed.checksum_ciphertext,
            segments=sealed.segments,
            segment_algorithm=SEGMENT_ALGORITHM,
            format_version=record.format_version,
            compression=record.compression.value,
            stored_size=sealed.stored_size,
        )
        async with self._db.transaction(write=True) as tx:
            done = await self._lifecycle.try_move(
                tx,
                record.id,
                BackupStatus.PROCESSING,
                BackupStatus.ACTIVE,
                actor,
                action=AuditAction.BACKUP_COMPLETE,
                reason=AuditAction.BACKUP_COMPLETE.value,
                values={
                    "original_size": sealed.original_size,
                    "encrypted_size": sealed.encrypted_size,
                    "stored_size": sealed.stored_size,
                    "checksum_plaintext": sealed.checksum_plaintext,
                    "checksum_ciphertext": sealed.checksum_ciphertext,
                    "completed_at": now,
                    "lease_expires_at": None,
                },
                details={
                    "original_size": sealed.original_size,
                    "checksum_plaintext": sealed.checksum_plaintext,
                    "classification": record.classification.value,
                    "key_version": record.key_version,
                },
                preceding_events=[stored],
            )
            if done is None:
                raise LeaseLost()
        return done

    async def _fail(
        self, actor: Actor, backup_id: UUID, reason: BackupFailureReason
    ) -> bool | None:
        """PROCESSING → FAILED with ``BACKUP_FAILED``, then remove the objects. Never raises.

        True: failed here; False: another replica had already failed it (its recovery, once
        the lease lapsed) — the objects are removed all the same, since this upload may have
        written them after that replica's clean-up; None: the failure could not be recorded.
        """
        try:
            async with self._db.transaction(write=True) as tx:
                failed = await self._lifecycle.fail_processing(tx, backup_id, reason, actor)
                current = failed or await tx.backups.get_or_none(backup_id)
        except SsbgError as exc:
            log.error("backup_failure_not_recorded", backup_id=str(backup_id), code=exc.code)
            return None
        if current is None or current.status != BackupStatus.FAILED.value:
            return None
        await self._lifecycle.remove_objects(backup_id)
        return failed is not None


def _level_of(submission: BackupSubmission) -> int | None:
    """The zstd level of a compressed submission, for the audit entry."""
    return submission.compression_level if submission.compression is Compression.ZSTD else None


def _lease_lost() -> SsbgError:
    """This replica did not renew the upload's lease in time (a slow database, a stalled
    process) and another one failed it: a dependency's failure, worth sending again."""
    return DatabaseUnavailable(
        "The upload lost its lease (its renewal did not reach the database in time) and was "
        "failed; nothing was stored. Send it again."
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
        return BackupFailureReason.INTERRUPTED, _lease_lost()
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
        return BackupFailureReason.INTERRUPTED, None
    log.error("backup_ingest_failed", error=type(exc).__name__)
    return BackupFailureReason.INTERNAL_ERROR, InternalError()
