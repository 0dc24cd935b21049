"""Idempotency-Key (SPEC §3, §13.3): a key names one request, not just one backup.

A request whose key this API key already used is compared with the backup that key created
*before anything is stored*: its fields (classification, source system, description, file
name, content type, compression) with the record's, then its payload's SHA-512 and size with
the record's (sealed) plaintext checksum and size, hashing the body as it streams — never
writing it. Only an
identical request gets the stored backup back; a different one is refused (``409``,
``details.reason = IDEMPOTENCY_MISMATCH``, a ``BACKUP_FAILED`` entry on the key's backup saying
nothing was stored), and a request arriving while the key's first request is still streaming is
a ``409`` too: no client is ever told its data was stored when it was not.
"""

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.backup_fields import DEFAULT_COMPRESSION_LEVEL
from ssbg.domain.enums import (
    AuditAction,
    AuditResult,
    BackupFailureReason,
    BackupStatus,
    Classification,
    Compression,
)
from ssbg.domain.errors import Conflict
from ssbg.domain.identity import Actor
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase


@dataclass(frozen=True)
class BackupSubmission:
    """A validated request to store a backup (the payload travels separately)."""

    classification: Classification | None
    source_system: str
    description: str | None
    original_filename: str | None
    content_type: str
    declared_size: int | None = None  # Content-Length of a raw body, when known
    compression: Compression = Compression.NONE
    compression_level: int = DEFAULT_COMPRESSION_LEVEL  # zstd's, when compressed


@dataclass(frozen=True)
class IngestOutcome:
    backup: BackupMetadata
    replayed: bool  # the backup an identical earlier request with the same Idempotency-Key stored


IDEMPOTENCY_MISMATCH = "IDEMPOTENCY_MISMATCH"
IDEMPOTENCY_IN_PROGRESS = "IDEMPOTENCY_IN_PROGRESS"


def _same_fields(
    record: BackupMetadata, submission: BackupSubmission, classification: Classification
) -> bool:
    """Whether ``submission`` describes ``record`` exactly (the payload aside)."""
    return (
        record.classification == classification
        and record.source_system == submission.source_system
        and record.description == submission.description
        and record.original_filename == submission.original_filename
        and record.content_type == submission.content_type
        and record.compression == submission.compression
    )


@dataclass(frozen=True, slots=True)
class IdempotentRequests:
    db: AppDatabase
    trail: AuditTrail

    async def find(self, actor: Actor, idempotency_key: str) -> BackupMetadata | None:
        """The backup ``actor`` stored under ``idempotency_key``, if any."""
        async with self.db.transaction(write=False) as tx:
            return await tx.backups.get_by_idempotency_key_or_none(actor.key_id, idempotency_key)

    async def replay(
        self,
        actor: Actor,
        existing: BackupMetadata,
        submission: BackupSubmission,
        classification: Classification,
        payload: AsyncIterator[bytes],
    ) -> IngestOutcome:
        """``existing`` if this request is the one that stored it; else ``Conflict``.

        Nothing of ``payload`` is stored: it is only hashed, to compare it with the record.
        """
        if not _same_fields(existing, submission, classification):
            await self._refuse_mismatch(actor, existing, "fields")
        if existing.status == BackupStatus.PROCESSING:
            raise Conflict(
                "A backup with this Idempotency-Key is still being processed.",
                {"backup_id": str(existing.id), "reason": IDEMPOTENCY_IN_PROGRESS},
            )
        if not await self._same_payload(existing, submission, payload):
            await self._refuse_mismatch(actor, existing, "payload")
        return IngestOutcome(existing, replayed=True)

    async def _same_payload(
        self, existing: BackupMetadata, submission: BackupSubmission, payload: AsyncIterator[bytes]
    ) -> bool:
        expected_size, expected_checksum = existing.original_size, existing.checksum_plaintext
        if expected_size is None or expected_checksum is None:
            return False
        if submission.declared_size is not None and submission.declared_size != expected_size:
            return False
        digest = hashlib.sha512()
        size = 0
        async for chunk in payload:
            size += len(chunk)
            if size > expected_size:  # different already: no need to read the rest
                return False
            digest.update(chunk)
        return size == expected_size and hmac.compare_digest(digest.hexdigest(), expected_checksum)

    async def _refuse_mismatch(self, actor: Actor, existing: BackupMetadata, what: str) -> None:
        """Record that a request reused ``existing``'s Idempotency-Key with a different
        ``what`` and was not stored; then raise the 409."""
        async with self.db.transaction(write=True) as tx:
            await self.trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.BACKUP_FAILED,
                    backup_resource(existing.id),
                    AuditResult.FAILED,
                    reason=BackupFailureReason.IDEMPOTENCY_MISMATCH.value,
                    mismatch=what,
                    stored=False,
                ),
            )
        raise Conflict(
            "This Idempotency-Key was already used for a different request; "
            "this one was not stored.",
            {"reason": IDEMPOTENCY_MISMATCH, "mismatch": what, "backup_id": str(existing.id)},
        )
