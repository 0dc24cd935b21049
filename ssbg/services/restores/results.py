"""How a verification ends: ``COMPLETED`` with a token, or ``FAILED`` (and, on an integrity
failure, the backup ``QUARANTINED``); and the sweep that fails requests whose gateway died.

No token is ever issued on a failure path. A token is returned once, to the caller whose
request completed; only its hash is stored.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog

from ssbg.domain.audit_events import AuditEvent, backup_resource, restore_resource
from ssbg.domain.enums import AuditAction, AuditResult, BackupStatus
from ssbg.domain.errors import CryptoShredded, IntegrityFailure
from ssbg.domain.identity import Actor
from ssbg.domain.key_versions import unwraps
from ssbg.domain.restore_lifecycle import RestoreStatus
from ssbg.domain.restore_tokens import TOKEN_BYTES, secret_digest
from ssbg.infrastructure import metrics
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.db.models import BackupMetadata, RestoreRequest
from ssbg.services.audit_service import AuditTrail
from ssbg.services.backups import BackupLifecycle
from ssbg.services.leases import restart_leases_renewed_after
from ssbg.services.restores.lifecycle import RestoreLifecycle
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

log = structlog.get_logger("ssbg.restores")

INTERRUPTED = "INTERRUPTED"


@dataclass(frozen=True)
class RestoreOutcome:
    """A restore request, and its download token when one was just issued (shown once)."""

    restore: RestoreRequest
    token: str | None = None


def new_token(integrity: IntegrityKey, now: datetime, ttl: timedelta) -> tuple[str, dict[str, Any]]:
    """A fresh download token and the columns that record it (its keyed verifier, never the
    token itself)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, {
        "token_hash": integrity.verifier(secret_digest(token)),
        "token_issued_at": now,
        "token_expires_at": now + ttl,
    }


def key_unwrap_event(actor: Actor, backup: BackupMetadata, restore_id: UUID) -> AuditEvent:
    return AuditEvent.by(
        actor,
        AuditAction.KEY_UNWRAP,
        backup_resource(backup.id),
        key_version=backup.key_version,
        restore_id=str(restore_id),
    )


@dataclass(frozen=True, slots=True)
class RestoreResults:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    lifecycle: RestoreLifecycle
    backups: BackupLifecycle
    integrity: IntegrityKey
    token_ttl: timedelta

    async def complete(
        self, actor: Actor, restore: RestoreRequest, backup: BackupMetadata, *, issue_token: bool
    ) -> RestoreOutcome:
        """``VERIFYING → COMPLETED`` with ``KEY_UNWRAP`` and ``RESTORE_COMPLETE``; the token
        (when ``issue_token``) is returned only once this has committed."""
        now = self.clock.now()
        token, token_values = (
            new_token(self.integrity, now, self.token_ttl) if issue_token else (None, {})
        )
        async with self.db.transaction(write=True) as tx:
            await self._still_restorable(tx, backup)
            completed = await self.lifecycle.move(
                tx,
                restore.id,
                RestoreStatus.VERIFYING,
                RestoreStatus.COMPLETED,
                actor,
                action=AuditAction.RESTORE_COMPLETE,
                details={
                    "verified_bytes": backup.original_size,
                    "token_issued": token is not None,
                    "token_expires_at": (
                        token_values["token_expires_at"].isoformat() if token else None
                    ),
                },
                preceding_events=[key_unwrap_event(actor, backup, restore.id)],
                completed_at=now,
                lease_expires_at=None,
                **token_values,
            )
        metrics.record_restore("completed")
        return RestoreOutcome(completed, token)

    @staticmethod
    async def _still_restorable(tx: UnitOfWork, backup: BackupMetadata) -> None:
        """``CryptoShredded`` if the backup's key was destroyed (or its shred began) while it
        was verified."""
        current = await tx.backups.get_or_none(backup.id)
        if current is None or current.status is BackupStatus.CRYPTO_SHREDDED:
            raise CryptoShredded()
        version = await tx.key_versions.get_or_none(current.key_version)
        if version is None or not unwraps(version.status, version.shred_started_at is not None):
            raise CryptoShredded()

    async def fail(
        self,
        actor: Actor,
        restore: RestoreRequest,
        backup: BackupMetadata,
        reason: str,
        *,
        quarantine: bool,
    ) -> None:
        """``VERIFYING → FAILED`` with ``RESTORE_FAILED``; quarantine the backup on an
        integrity failure. Nothing when the request was moved meanwhile (by recovery)."""
        async with self.db.transaction(write=True) as tx:
            if quarantine:
                await self._quarantine_in(tx, actor, backup, restore.id)
            failed = await self.lifecycle.try_move(
                tx,
                restore.id,
                RestoreStatus.VERIFYING,
                RestoreStatus.FAILED,
                actor,
                action=AuditAction.RESTORE_FAILED,
                result=AuditResult.FAILED,
                details={"reason": reason, "quarantined": quarantine},
                failure_reason=reason,
                lease_expires_at=None,
            )
        if failed is not None:
            metrics.record_restore("failed")
            log.warning("restore_failed", restore_id=str(restore.id), reason=reason)

    async def quarantine_after_download(
        self, actor: Actor, restore: RestoreRequest, backup: BackupMetadata
    ) -> None:
        """A segment failed to authenticate during a download of a verified backup: the
        object changed since. Quarantine it; the request stays ``COMPLETED`` (its download
        was refused), so the failure is recorded without a status change."""
        async with self.db.transaction(write=True) as tx:
            await self._quarantine_in(tx, actor, backup, restore.id, during="download")
            await self.trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.RESTORE_FAILED,
                    restore_resource(restore.id),
                    AuditResult.FAILED,
                    backup_id=str(backup.id),
                    reason=IntegrityFailure.code,
                    quarantined=True,
                    during="download",
                ),
            )
        log.error("restore_download_integrity_failure", restore_id=str(restore.id))

    async def _quarantine_in(
        self, tx: UnitOfWork, actor: Actor, backup: BackupMetadata, restore_id: UUID, **details: str
    ) -> None:
        """``ACTIVE → QUARANTINED`` after an integrity failure (transition row + audit)."""
        await self.backups.try_move(
            tx,
            backup.id,
            BackupStatus.ACTIVE,
            BackupStatus.QUARANTINED,
            actor,
            result=AuditResult.FAILED,
            reason=IntegrityFailure.code,
            details={"restore_id": str(restore_id), **details},
        )

    async def fail_interrupted(self) -> list[UUID]:
        """``VERIFYING`` requests whose gateway died (lease lapsed) become ``FAILED``; when
        several replicas sweep at once, the compare-and-set lets exactly one record each."""
        now = self.clock.now()
        # A lease renewed after now (the clock went back) counts again from now.
        await restart_leases_renewed_after(self.db, now, lambda tx: tx.restores, "restore")
        async with self.db.transaction(write=False) as tx:
            lapsed = await tx.restores.list_lapsed_verifying(now, 100)
        failed: list[UUID] = []
        for restore_id in lapsed:
            async with self.db.transaction(write=True) as tx:
                moved = await self.lifecycle.try_move(
                    tx,
                    restore_id,
                    RestoreStatus.VERIFYING,
                    RestoreStatus.FAILED,
                    None,
                    action=AuditAction.RESTORE_FAILED,
                    result=AuditResult.FAILED,
                    details={"reason": INTERRUPTED},
                    lease_lapsed_before=now,
                    failure_reason=INTERRUPTED,
                    lease_expires_at=None,
                )
            if moved is not None:
                metrics.record_restore("failed")
                failed.append(restore_id)
        return failed
