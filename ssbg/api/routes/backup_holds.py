"""Legal holds (SPEC §13.4): while held, a backup is never deleted — by hand, by retention or
by a crypto-shred of its key version."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from ssbg.api.dependencies import ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.backups import BackupOut, HoldRequest
from ssbg.api.schemas.common import Envelope, Meta
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthMfaInvalid,
    AuthMfaRequired,
    BackupNotFound,
    Conflict,
    ForbiddenRole,
    IncidentLockdown,
    InvalidStateTransition,
)
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission

router = APIRouter(prefix="/backups", tags=["backups"])
Holder = Annotated[Actor, Depends(require(Permission.BACKUP_HOLD, mfa=True))]
_ERRORS = (AuthInvalidKey, ForbiddenRole, AuthMfaRequired, AuthMfaInvalid, IncidentLockdown)


@router.post(
    "/{backup_id}/hold",
    response_model=Envelope[BackupOut],
    responses=error_responses(*_ERRORS, BackupNotFound, Conflict, InvalidStateTransition),
)
async def place_hold(
    backup_id: UUID, body: HoldRequest, request: Request, services: ServicesDep, actor: Holder
) -> Envelope[BackupOut]:
    """Place a legal hold (admin with MFA; audited ``BACKUP_HOLD``). Only an ``ACTIVE`` or
    ``QUARANTINED`` backup can be held (else ``409 INVALID_STATE_TRANSITION``); one already
    held is ``409 CONFLICT`` (``details.reason = "ALREADY_HELD"``)."""
    backup = await services.backups.place_hold(actor, backup_id, body.reason)
    return Envelope(data=BackupOut.of(backup), meta=Meta(request_id=request_id_of(request.scope)))


@router.delete(
    "/{backup_id}/hold",
    response_model=Envelope[BackupOut],
    responses=error_responses(*_ERRORS, BackupNotFound, Conflict),
)
async def release_hold(
    backup_id: UUID, body: HoldRequest, request: Request, services: ServicesDep, actor: Holder
) -> Envelope[BackupOut]:
    """Release a legal hold (admin with MFA; the body's ``reason`` is required and audited
    ``BACKUP_HOLD_RELEASE``). A backup not held is ``409 CONFLICT``
    (``details.reason = "NOT_HELD"``)."""
    backup = await services.backups.release_hold(actor, backup_id, body.reason)
    return Envelope(data=BackupOut.of(backup), meta=Meta(request_id=request_id_of(request.scope)))
