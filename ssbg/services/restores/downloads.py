"""Downloads (SPEC §3 Restores): the requester, with its token, streams the plaintext.

Checked in one transaction (the request row locked): the requester and the token (anything
else is indistinguishable from a missing restore), the incident level, the token's expiry,
the backup's state and its key version. The download is recorded (``KEY_UNWRAP`` +
``RESTORE_DOWNLOAD``, or the refusal) before a byte is sent. The backup is decrypted again
segment by segment as it is sent; the first segment that does not authenticate quarantines
the backup and aborts the connection, so a client never takes a short file for a whole one.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ssbg.domain.audit_events import AuditEvent, restore_resource
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import (
    IncidentLockdown,
    IntegrityFailure,
    InvalidStateTransition,
    PolicyDenied,
    RestoreNotFound,
    RestoreTokenExpired,
    SsbgError,
)
from ssbg.domain.identity import Actor
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.policy_engine import BuiltinRule, ReasonCategory
from ssbg.domain.restore_lifecycle import RestoreStatus
from ssbg.domain.restore_tokens import secret_digest, token_expired
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
from ssbg.infrastructure.crypto.stream_decryption import decrypt_object
from ssbg.infrastructure.db.models import BackupMetadata, RestoreRequest
from ssbg.services.audit_service import AuditTrail
from ssbg.services.restores.admission import RestoreAdmission, backup_problem
from ssbg.services.restores.lifecycle import RestoreLifecycle
from ssbg.services.restores.results import RestoreResults, key_unwrap_event
from ssbg.services.restores.verification import BackupReader
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork


@dataclass(frozen=True)
class RestoreDownload:
    filename: str
    size: int
    checksum_plaintext: str
    content_type: str
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class _Refusal:
    problem: SsbgError
    recorded: bool  # the refusal's RESTORE_DOWNLOAD entry came with a status change


@dataclass(frozen=True, slots=True)
class RestoreDownloads:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    admission: RestoreAdmission
    lifecycle: RestoreLifecycle
    reader: BackupReader
    results: RestoreResults
    integrity: IntegrityKey

    async def open_download(
        self, actor: Actor, restore_id: UUID, presented_token: str | None
    ) -> RestoreDownload:
        """Check, record, and return the plaintext stream (see the module doc)."""
        now = self.clock.now()
        async with self.db.transaction(write=True) as tx:
            restore = await tx.restores.get_for_update_or_none(restore_id)
            if restore is None:
                raise RestoreNotFound()
            refusal = await self._refusal(tx, actor, restore, presented_token, now)
            backup = await tx.backups.get_or_none(restore.backup_id)
            decryptor: ObjectDecryptor | None = None
            if refusal is None:
                problem = backup_problem(backup)
                refusal = _Refusal(problem, recorded=False) if problem else None
            if refusal is None and backup is not None:
                try:
                    decryptor = await self.reader.decryptor(tx, backup)
                except SsbgError as unusable:
                    refusal = _Refusal(unusable, recorded=False)
            if refusal is None and backup is not None:
                await tx.restores.count_download(restore.id)
                await self.trail.append(tx, key_unwrap_event(actor, backup, restore.id))
            if refusal is None or not refusal.recorded:
                await self.trail.append(
                    tx,
                    AuditEvent.by(
                        actor,
                        AuditAction.RESTORE_DOWNLOAD,
                        restore_resource(restore.id),
                        AuditResult.SUCCESS if refusal is None else AuditResult.DENIED,
                        backup_id=str(restore.backup_id),
                        code=refusal.problem.code if refusal else None,
                    ),
                )
        if refusal is not None:
            raise refusal.problem
        assert backup is not None
        assert decryptor is not None
        return RestoreDownload(
            filename=backup.original_filename or f"{backup.id}.bin",
            size=int(backup.original_size or 0),
            checksum_plaintext=backup.checksum_plaintext or "",
            content_type=backup.content_type,
            chunks=self._plaintext(actor, restore, backup, decryptor),
        )

    async def _refusal(
        self,
        tx: UnitOfWork,
        actor: Actor,
        restore: RestoreRequest,
        presented_token: str | None,
        now: datetime,
    ) -> _Refusal | None:
        """Why this download may not start; a refusal that changes the request's status
        (an expired token, a restore parked for approval) is recorded by that move."""
        if restore.requested_by != actor.key_id or not (
            presented_token
            and self.integrity.verifier_matches(secret_digest(presented_token), restore.token_hash)
        ):
            # Another key, or a wrong token: indistinguishable from a missing restore.
            return _Refusal(RestoreNotFound(), recorded=False)
        level = await self.admission.lock_level(tx)
        if level is IncidentLevel.LOCKDOWN:
            return _Refusal(
                IncidentLockdown(
                    details={
                        "rule": BuiltinRule.INCIDENT.value,
                        "reason_category": ReasonCategory.INCIDENT_LOCKDOWN.value,
                    }
                ),
                recorded=False,
            )
        status = restore.status
        if status is RestoreStatus.COMPLETED and token_expired(restore.token_expires_at, now):
            await self._refuse_with_move(
                tx, actor, restore, RestoreStatus.EXPIRED, RestoreTokenExpired()
            )
            return _Refusal(RestoreTokenExpired(), recorded=True)
        if status is RestoreStatus.EXPIRED:
            return _Refusal(RestoreTokenExpired(), recorded=False)
        if status is not RestoreStatus.COMPLETED:
            return _Refusal(
                InvalidStateTransition(
                    f"A {status.value} restore cannot be downloaded.", {"status": status.value}
                ),
                recorded=False,
            )
        if level is IncidentLevel.QUARANTINE and restore.approved_by is None:
            frozen = PolicyDenied(
                "Incident level QUARANTINE: key unwrap is frozen until an admin approves this "
                "restore; collect a new token after the approval.",
                {
                    "rule": BuiltinRule.INCIDENT.value,
                    "reason_category": ReasonCategory.INCIDENT_QUARANTINE.value,
                },
            )
            await self._refuse_with_move(
                tx,
                actor,
                restore,
                RestoreStatus.PENDING_APPROVAL,
                frozen,
                token_hash=None,
                token_expires_at=None,
            )
            return _Refusal(frozen, recorded=True)
        return None

    async def _refuse_with_move(
        self,
        tx: UnitOfWork,
        actor: Actor,
        restore: RestoreRequest,
        target: RestoreStatus,
        problem: SsbgError,
        **values: object,
    ) -> None:
        await self.lifecycle.move(
            tx,
            restore.id,
            restore.status,
            target,
            actor,
            action=AuditAction.RESTORE_DOWNLOAD,
            result=AuditResult.DENIED,
            details={"code": problem.code},
            **values,
        )

    async def _plaintext(
        self,
        actor: Actor,
        restore: RestoreRequest,
        backup: BackupMetadata,
        decryptor: ObjectDecryptor,
    ) -> AsyncIterator[bytes]:
        try:
            async for segment in decrypt_object(self.reader.ciphertext(backup), decryptor):
                yield segment
        except IntegrityFailure:
            # The object changed since it was verified: quarantine it, and let the exception
            # abort the response so the client never takes a short file for a whole one.
            await asyncio.shield(self.results.quarantine_after_download(actor, restore, backup))
            raise
