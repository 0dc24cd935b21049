"""Verification at rest of one backup (SPEC §13.4): ``POST /backups/{id}/verify``.

The restore's decrypt-and-verify path, without a restore: the key version is re-read (a
destroyed one is 410), the DEK unwrapped in memory, every segment of ``data.enc``
authenticated and decrypted on the worker lanes (:func:`verify_object`, memory bounded by a
few segments), and the sizes and both SHA-512s compared with the metadata. The plaintext is
hashed and dropped: nothing is returned, written or logged.

No transaction is open while the objects are read. Then one transaction records the finding:
``last_verified_at`` (when reading began) and ``last_verification_result`` on the backup, the
``BACKUP_VERIFY`` entry and — for an ``INVALID`` finding on an ``ACTIVE`` backup — the move to
``QUARANTINED`` through the lifecycle core, all committed together. A verification that began
before the one already recorded does not overwrite it (its entry and any quarantine still
count). A dependency that fails (store, key store, database) is ``BACKUP_VERIFY`` ``ERROR``
and the caller's 503: nothing is recorded as verified.

The DEK unwrap is recorded in ``BACKUP_VERIFY`` (with its key version), not as ``KEY_UNWRAP``:
that action means key use that can release plaintext, which detection rules count (M5).
"""

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import structlog

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.enums import AuditAction, AuditResult, BackupStatus
from ssbg.domain.errors import (
    BackupNotFound,
    IntegrityFailure,
    SsbgError,
    StorageUnavailable,
    TamperedRow,
)
from ssbg.domain.identity import Actor
from ssbg.domain.verification import (
    InvalidReason,
    VerificationResult,
    mismatched_fields,
    verify_refusal,
)
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.stream_decryption import verify_object
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.services.audit_service import AuditTrail
from ssbg.services.backups import BackupLifecycle
from ssbg.services.restores.verification import BackupReader, measured_facts, recorded_facts
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

log = structlog.get_logger("ssbg.verification")


class VerificationStep(Protocol):
    """A verify job's part in recording one backup: its progress is written in the same
    transaction as the finding, under the job's lease (:mod:`.jobs`)."""

    @property
    def job_id(self) -> UUID: ...

    def hold(self) -> AbstractAsyncContextManager[Any]:
        """Entered before the recording transaction opens (the lease cannot change meanwhile)."""
        ...

    async def record(self, tx: UnitOfWork, *, valid: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class Finding:
    reason: InvalidReason | None
    mismatched: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class VerificationOutcome:
    """The backup as recorded afterwards, and what was found."""

    backup: BackupMetadata
    verified_at: datetime
    finding: Finding
    # False when a verification that started later had already been recorded
    recorded: bool

    @property
    def valid(self) -> bool:
        return self.finding.valid


@dataclass(frozen=True, slots=True)
class BackupScrub:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    reader: BackupReader
    store: ObjectStore
    lifecycle: BackupLifecycle

    async def verify_backup(
        self, actor: Actor | None, backup_id: UUID, *, step: VerificationStep | None = None
    ) -> VerificationOutcome:
        """Verify and record (see the module doc). Raises ``BackupNotFound``, 409/410 for a
        backup that cannot be verified, ``TamperedRow`` for a metadata row whose seal fails,
        and the dependency's 503 (after recording ``ERROR``)."""
        started = self.clock.now()
        try:
            finding = await self._inspect(backup_id)
        except SsbgError as error:
            # A refusal (404, 409, 410) verified nothing and changed nothing; a tampered row
            # is recorded as such by whoever catches it.
            if error.status >= 500 and not isinstance(error, TamperedRow):
                await self._record_error(actor, backup_id, error, step)
            raise
        backup, recorded = await self._record(actor, backup_id, started, finding, step)
        return VerificationOutcome(backup, started, finding, recorded)

    async def _inspect(self, backup_id: UUID) -> Finding:
        async with self.db.transaction(write=False) as tx:
            backup = await tx.backups.get_or_none(backup_id)
            if backup is None:
                raise BackupNotFound()
            refusal = verify_refusal(backup.status)
            if refusal is not None:
                raise refusal
            try:
                decryptor = await self.reader.decryptor(tx, backup)
            except IntegrityFailure as failure:
                if isinstance(failure, TamperedRow):
                    raise
                return await self._unreadable(backup)
        try:
            measured = await verify_object(self.reader.ciphertext(backup), decryptor)
        except IntegrityFailure:
            return await self._unreadable(backup)
        mismatched = mismatched_fields(recorded_facts(backup), measured_facts(measured))
        return Finding(InvalidReason.CHECKSUM_MISMATCH if mismatched else None, mismatched)

    async def _unreadable(self, backup: BackupMetadata) -> Finding:
        """An object that did not authenticate, or is not there at all."""
        with contextlib.suppress(StorageUnavailable):
            for key in (backup.storage_ref, backup.wrapped_dek_ref):
                if not await self.store.exists(key):
                    return Finding(InvalidReason.OBJECT_MISSING)
        return Finding(InvalidReason.AUTHENTICATION_FAILED)

    async def _record(
        self,
        actor: Actor | None,
        backup_id: UUID,
        started: datetime,
        finding: Finding,
        step: VerificationStep | None,
    ) -> tuple[BackupMetadata, bool]:
        async with step.hold() if step else _nothing(), self.db.transaction(write=True) as tx:
            backup = await tx.backups.lock_or_none(backup_id)
            if backup is None:
                raise BackupNotFound()
            refusal = verify_refusal(backup.status)
            if refusal is not None:
                # Deleted or shredded while it was read: the finding concerns nothing kept.
                raise refusal
            if step is not None:
                await step.record(tx, valid=finding.valid)
            newer = backup.last_verified_at is not None and backup.last_verified_at > started
            result = VerificationResult.VALID if finding.valid else VerificationResult.INVALID
            job = {"job_id": str(step.job_id)} if step else {}
            event = AuditEvent.by(
                actor,
                AuditAction.BACKUP_VERIFY,
                backup_resource(backup_id),
                AuditResult.SUCCESS if finding.valid else AuditResult.FAILED,
                verification_result=result.value,
                reason=finding.reason.value if finding.reason else None,
                mismatched=list(finding.mismatched),
                verified_at=format_timestamp(started),
                superseded=newer,
                key_version=backup.key_version,
                verified_bytes=backup.original_size,
                **job,
            )
            values = (
                {}
                if newer
                else {"last_verified_at": started, "last_verification_result": result.value}
            )
            if not finding.valid and backup.status is BackupStatus.ACTIVE:
                backup = await self.lifecycle.move(
                    tx,
                    backup_id,
                    BackupStatus.ACTIVE,
                    BackupStatus.QUARANTINED,
                    actor,
                    result=AuditResult.FAILED,
                    reason=IntegrityFailure.code,
                    values=values,
                    details={"during": "verify", **job},
                    preceding_events=[event],
                )
            else:
                if values:
                    await tx.backups.record_verification(
                        backup, verified_at=started, result=result.value, now=self.clock.now()
                    )
                await self.trail.append(tx, event)
        if not finding.valid:
            log.warning(
                "backup_verification_failed",
                backup_id=str(backup_id),
                reason=finding.reason.value if finding.reason else None,
            )
        return backup, not newer

    async def _record_error(
        self,
        actor: Actor | None,
        backup_id: UUID,
        error: SsbgError,
        step: VerificationStep | None,
    ) -> None:
        """``BACKUP_VERIFY`` ``ERROR``: the verification could not run to the end. Never
        raises: the caller fails with the original error either way."""
        log.warning("backup_verification_error", backup_id=str(backup_id), code=error.code)
        job = {"job_id": str(step.job_id)} if step else {}
        try:
            async with self.db.transaction(write=True) as tx:
                await self.trail.append(
                    tx,
                    AuditEvent.by(
                        actor,
                        AuditAction.BACKUP_VERIFY,
                        backup_resource(backup_id),
                        AuditResult.ERROR,
                        code=error.code,
                        **job,
                    ),
                )
        except SsbgError as unrecorded:
            log.error("backup_verification_error_not_recorded", code=unrecorded.code)


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield
