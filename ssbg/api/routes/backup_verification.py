"""Verification at rest and quarantine release (SPEC §13.4)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Request, Response

from ssbg.api.dependencies import ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.backups import BackupOut
from ssbg.api.schemas.common import Envelope, Meta
from ssbg.api.schemas.verification import ReleaseIn, VerificationOut, VerifyJobIn, VerifyJobOut
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthMfaInvalid,
    AuthMfaRequired,
    BackupNotFound,
    Conflict,
    CryptoShredded,
    DatabaseUnavailable,
    ForbiddenRole,
    IncidentLockdown,
    IntegrityFailure,
    InvalidStateTransition,
    KeyUnavailable,
    NotFound,
    StorageUnavailable,
)
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission

router = APIRouter(tags=["backups: verification"])
Verifier = Annotated[Actor, Depends(require(Permission.BACKUP_VERIFY))]
Releaser = Annotated[Actor, Depends(require(Permission.BACKUP_RELEASE, mfa=True))]
_AUTH = (AuthInvalidKey, ForbiddenRole, IncidentLockdown)


def _meta(request: Request) -> Meta:
    return Meta(request_id=request_id_of(request.scope))


@router.post(
    "/backups/{backup_id}/verify",
    response_model=Envelope[VerificationOut],
    responses=error_responses(
        *_AUTH,
        BackupNotFound,
        InvalidStateTransition,
        CryptoShredded,
        IntegrityFailure,
        StorageUnavailable,
        KeyUnavailable,
        DatabaseUnavailable,
    ),
)
async def verify_backup(
    backup_id: UUID, request: Request, services: ServicesDep, actor: Verifier
) -> Envelope[VerificationOut]:
    """Verify a backup at rest: authenticate every segment of its stored ciphertext and
    compare both SHA-512s and the sizes with its metadata. No plaintext is returned or kept.

    **200 either way**: an INVALID backup is a finding, not a failed request —
    ``{"valid": false, "reason": …}``, and an ACTIVE backup is moved to QUARANTINED. The
    result is recorded on the backup (``last_verified_at``, ``last_verification_result``) and
    audited (``BACKUP_VERIFY``). Only ACTIVE and QUARANTINED backups can be verified (others
    409; CRYPTO_SHREDDED 410). A store or key store that does not answer is 503 and nothing
    is recorded as verified.
    """
    outcome = await services.verification.verify_backup(actor, backup_id)
    return Envelope(data=VerificationOut.of(outcome), meta=_meta(request))


@router.post(
    "/backups/{backup_id}/release",
    response_model=Envelope[BackupOut],
    responses=error_responses(
        *_AUTH, AuthMfaRequired, AuthMfaInvalid, BackupNotFound, InvalidStateTransition, Conflict
    ),
)
async def release_backup(
    backup_id: UUID, body: ReleaseIn, request: Request, services: ServicesDep, actor: Releaser
) -> Envelope[BackupOut]:
    """Release a QUARANTINED backup back to ACTIVE (admin with MFA; ``reason`` required,
    audited ``BACKUP_RELEASE``).

    Only when its last verification is VALID and started after it was quarantined; otherwise
    409 ``CONFLICT`` with ``details.reason = "VERIFICATION_REQUIRED"``. A backup that is not
    QUARANTINED is 409 ``INVALID_STATE_TRANSITION``.
    """
    backup = await services.verification.release_backup(actor, backup_id, body.reason)
    return Envelope(data=BackupOut.of(backup), meta=_meta(request))


@router.post(
    "/admin/verify",
    status_code=202,
    response_model=Envelope[VerifyJobOut],
    responses=error_responses(*_AUTH, Conflict),
)
async def start_verify_job(
    request: Request,
    response: Response,
    services: ServicesDep,
    actor: Verifier,
    body: Annotated[VerifyJobIn | None, Body()] = None,
) -> Envelope[VerifyJobOut]:
    """Start verifying a selection of backups (default: every ACTIVE and QUARANTINED one) as
    a resumable job; poll ``GET /admin/verify/{job_id}`` for progress.

    The job covers the backups completed when it starts, oldest first; each is verified and
    recorded as ``POST /backups/{id}/verify`` does it (actor ``system``). If the gateway that
    runs it stops, another replica resumes it from the last backup done. One job at a time:
    409 ``CONFLICT`` (``details.reason = "VERIFY_JOB_RUNNING"``, ``details.job_id``) while
    another runs.
    """
    job = await services.verification.start_job(actor, (body or VerifyJobIn()).to_selection())
    response.headers["Location"] = str(request.url_for("get_verify_job", job_id=job.id).path)
    return Envelope(data=VerifyJobOut.of(job), meta=_meta(request))


@router.get(
    "/admin/verify/{job_id}",
    response_model=Envelope[VerifyJobOut],
    responses=error_responses(*_AUTH, NotFound),
)
async def get_verify_job(
    job_id: UUID, request: Request, services: ServicesDep, _actor: Verifier
) -> Envelope[VerifyJobOut]:
    """A verify job's progress: ``status`` (RUNNING, COMPLETED), ``total``, ``verified``,
    ``failed``."""
    job = await services.verification.get_job(job_id)
    return Envelope(data=VerifyJobOut.of(job), meta=_meta(request))
