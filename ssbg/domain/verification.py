"""Verification at rest and quarantine release (SPEC §13.4), as pure rules.

A verification reads a backup's stored objects, authenticates every segment and recomputes
both SHA-512s, releasing no plaintext. Its outcome is a *finding*, not an error: ``VALID``, or
``INVALID`` with the first reason found. ``last_verified_at`` is the moment the verification
*started* reading: it vouches for the objects as they were from then on, so a verification
that was already running when a backup was quarantined never counts as one made after it.

Which backups may be verified: ``ACTIVE`` and ``QUARANTINED`` ones (the only statuses whose
objects are kept and whose key still exists). A ``CRYPTO_SHREDDED`` backup is gone for good
(410); the others have nothing to verify (409).

Release (``QUARANTINED → ACTIVE``) needs the most recent verification to be ``VALID`` and to
have started after the backup was last quarantined.
"""

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.enums import BackupStatus, Classification
from ssbg.domain.errors import Conflict, CryptoShredded, InvalidStateTransition, SsbgError


class VerificationResult(StrEnum):
    """``backup_metadata.last_verification_result``."""

    VALID = "VALID"
    INVALID = "INVALID"


class InvalidReason(StrEnum):
    """Why a verification found a backup ``INVALID`` (the first problem met)."""

    # data.enc or dek.wrapped is not in the store
    OBJECT_MISSING = "OBJECT_MISSING"
    # the header, the wrapped DEK or a segment did not authenticate (altered, truncated,
    # swapped between backups)
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    # every segment authenticated, but a size or SHA-512 differs from the metadata
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"


class VerifyJobStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"


VERIFIABLE_STATUSES: tuple[BackupStatus, ...] = (BackupStatus.ACTIVE, BackupStatus.QUARANTINED)

# Why a release is refused (``details.reason`` of the 409).
VERIFICATION_REQUIRED = "VERIFICATION_REQUIRED"
# Another verify job is still running (``details.reason`` of the 409 on a new job).
VERIFY_JOB_RUNNING = "VERIFY_JOB_RUNNING"
# The reason recorded on the ``QUARANTINED → ACTIVE`` transition.
RELEASED_AFTER_VERIFICATION = "VERIFIED_AFTER_QUARANTINE"


def _timestamp(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment is not None else None


def verify_refusal(status: BackupStatus) -> SsbgError | None:
    """Why a backup in ``status`` cannot be verified, or ``None`` if it can."""
    if status in VERIFIABLE_STATUSES:
        return None
    if status is BackupStatus.CRYPTO_SHREDDED:
        return CryptoShredded()
    return InvalidStateTransition(
        f"A {status.value} backup has no stored objects to verify; only ACTIVE and "
        "QUARANTINED backups can be verified.",
        {"backup_status": status.value},
    )


def release_refusal(
    status: BackupStatus,
    *,
    quarantined_at: datetime | None,
    last_verified_at: datetime | None,
    last_result: str | None,
) -> SsbgError | None:
    """Why a backup cannot be released now, or ``None`` if it can: it must be ``QUARANTINED``,
    and its last verification ``VALID`` and started after ``quarantined_at``."""
    if status is not BackupStatus.QUARANTINED:
        return InvalidStateTransition(
            f"Only a QUARANTINED backup can be released; this one is {status.value}.",
            {"backup_status": status.value},
        )
    fresh = last_verified_at is not None and (
        quarantined_at is None or last_verified_at > quarantined_at
    )
    if fresh and last_result == VerificationResult.VALID:
        return None
    details: dict[str, Any] = {
        "reason": VERIFICATION_REQUIRED,
        "quarantined_at": _timestamp(quarantined_at),
        "last_verified_at": _timestamp(last_verified_at),
        "last_verification_result": last_result,
    }
    message = (
        "The last verification since the quarantine found the backup INVALID."
        if fresh
        else "No verification has been made since the backup was quarantined."
    )
    return Conflict(
        f"{message} Verify it (POST /backups/{{id}}/verify) and release it once it is VALID.",
        details,
    )


@dataclass(frozen=True, slots=True)
class ObjectFacts:
    """Sizes and SHA-512s of a backup: as recorded in its metadata, or as measured."""

    plaintext_bytes: int | None
    ciphertext_bytes: int | None
    checksum_plaintext: str | None
    checksum_ciphertext: str | None
    # The segments' bodies as stored (compressed or raw): recorded only for a compressed
    # backup, and compared only where it is recorded.
    stored_bytes: int | None = None


_FACT_FIELDS = ("plaintext_bytes", "ciphertext_bytes", "checksum_plaintext", "checksum_ciphertext")


def mismatched_fields(recorded: ObjectFacts, measured: ObjectFacts) -> tuple[str, ...]:
    """The facts that differ (empty: the stored objects are what the metadata says)."""
    mismatched = [
        name for name in _FACT_FIELDS if getattr(recorded, name) != getattr(measured, name)
    ]
    if recorded.stored_bytes is not None and recorded.stored_bytes != measured.stored_bytes:
        mismatched.append("stored_bytes")
    return tuple(mismatched)


# A source-system glob: the characters of a source system plus fnmatch's * ? [ ] !
SOURCE_GLOB_PATTERN = r"^[A-Za-z0-9._\-*?\[\]!]{1,200}$"
_SOURCE_GLOB = re.compile(SOURCE_GLOB_PATTERN)


@dataclass(frozen=True, slots=True)
class VerifySelection:
    """Which backups a verify job covers: every backup in one of ``statuses`` whose source
    system matches the glob (case-sensitive, ``fnmatch``), of ``classification``, created in
    ``[created_from, created_to)`` — each criterion left out matches everything."""

    statuses: tuple[BackupStatus, ...] = VERIFIABLE_STATUSES
    source_system: str | None = None
    classification: Classification | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def __post_init__(self) -> None:
        if not self.statuses:
            raise ValueError("name at least one status")
        if any(status not in VERIFIABLE_STATUSES for status in self.statuses):
            raise ValueError("only ACTIVE and QUARANTINED backups can be verified")
        if self.source_system is not None and not _SOURCE_GLOB.fullmatch(self.source_system):
            raise ValueError("must be a glob of 1-200 source-system characters and * ? [ ] !")
        if (
            self.created_from is not None
            and self.created_to is not None
            and self.created_from >= self.created_to
        ):
            raise ValueError("created_from must be before created_to")
        ordered = tuple(status for status in VERIFIABLE_STATUSES if status in self.statuses)
        object.__setattr__(self, "statuses", ordered)

    def matches_source(self, source_system: str) -> bool:
        return self.source_system is None or fnmatch.fnmatchcase(source_system, self.source_system)

    def as_json(self) -> dict[str, Any]:
        """The selection as stored on the job and shown by the API."""
        return {
            "statuses": [status.value for status in self.statuses],
            "source_system": self.source_system,
            "classification": self.classification.value if self.classification else None,
            "created_from": self.created_from.isoformat() if self.created_from else None,
            "created_to": self.created_to.isoformat() if self.created_to else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "VerifySelection":
        def moment(value: Any) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        classification = data.get("classification")
        return cls(
            statuses=tuple(BackupStatus(status) for status in data["statuses"]),
            source_system=data.get("source_system"),
            classification=Classification(classification) if classification else None,
            created_from=moment(data.get("created_from")),
            created_to=moment(data.get("created_to")),
        )
