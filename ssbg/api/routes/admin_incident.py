from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ssbg.api.dependencies import ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.common import Envelope, Meta
from ssbg.api.schemas.incident import IncidentLevelSet, IncidentOut
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthMfaInvalid,
    AuthMfaRequired,
    ForbiddenRole,
    InvalidStateTransition,
)
from ssbg.domain.identity import Actor
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.permissions import Permission

router = APIRouter(prefix="/admin/incident", tags=["admin: incident"])


@router.get(
    "",
    response_model=Envelope[IncidentOut],
    responses=error_responses(AuthInvalidKey, ForbiddenRole),
)
async def get_incident(
    request: Request,
    services: ServicesDep,
    _actor: Annotated[Actor, Depends(require(Permission.INCIDENT_READ))],
) -> Envelope[IncidentOut]:
    """The effective incident level (0 NORMAL, 1 ALERT, 2 QUARANTINE, 3 LOCKDOWN) and its history.

    Level 1 reverts to 0 thirty minutes after its last alert; ``auto_revert_at`` says when.
    """
    status = await services.incidents.get_status()
    return Envelope(data=IncidentOut.of(status), meta=Meta(request_id=request_id_of(request.scope)))


@router.post(
    "",
    response_model=Envelope[IncidentOut],
    responses=error_responses(
        AuthInvalidKey, AuthMfaRequired, AuthMfaInvalid, ForbiddenRole, InvalidStateTransition
    ),
)
async def set_incident(
    body: IncidentLevelSet,
    request: Request,
    services: ServicesDep,
    actor: Annotated[Actor, Depends(require(Permission.INCIDENT_SET, mfa=True))],
) -> Envelope[IncidentOut]:
    """Set the incident level (super_admin with MFA). Level 3 (LOCKDOWN) is lifted
    only on the host, with ``ssbg incident release``."""
    status = await services.incidents.set_level(actor, IncidentLevel(body.level), body.reason)
    return Envelope(data=IncidentOut.of(status), meta=Meta(request_id=request_id_of(request.scope)))
