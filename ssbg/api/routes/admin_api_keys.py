from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from ssbg.api.dependencies import MfaTokenDep, ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from ssbg.api.schemas.common import Envelope, ListEnvelope, ListMeta, Meta
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthMfaInvalid,
    AuthMfaRequired,
    ForbiddenRole,
    InvalidStateTransition,
    NotFound,
)
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission

router = APIRouter(prefix="/admin/api-keys", tags=["admin: API keys"])
SuperAdmin = Annotated[Actor, Depends(require(Permission.API_KEY_MANAGE))]
_ERRORS = (AuthInvalidKey, ForbiddenRole)


@router.post(
    "",
    status_code=201,
    response_model=Envelope[ApiKeyCreated],
    responses=error_responses(*_ERRORS, AuthMfaRequired, AuthMfaInvalid),
)
async def create_api_key(
    body: ApiKeyCreate,
    request: Request,
    services: ServicesDep,
    actor: SuperAdmin,
    mfa_token: MfaTokenDep = None,
) -> Envelope[ApiKeyCreated]:
    """Create an API key. The raw key (and, for admin roles, the TOTP secret) is in this
    response only: it is never stored and cannot be shown again. A ``super_admin`` key needs
    the caller's TOTP code in ``X-MFA-Token``; keys of other roles do not."""
    issued = await services.api_keys.create_api_key(actor, body.to_request(), mfa_token=mfa_token)
    return Envelope(
        data=ApiKeyCreated.of_issued(issued, services.clock.now()),
        meta=Meta(request_id=request_id_of(request.scope)),
    )


@router.get("", response_model=ListEnvelope[ApiKeyOut], responses=error_responses(*_ERRORS))
async def list_api_keys(
    request: Request, services: ServicesDep, actor: SuperAdmin
) -> ListEnvelope[ApiKeyOut]:
    """Every API key, revoked ones included (they stay for the audit trail)."""
    records = await services.api_keys.list_api_keys()
    now = services.clock.now()
    return ListEnvelope(
        data=[ApiKeyOut.of(record, now) for record in records],
        meta=ListMeta(request_id=request_id_of(request.scope), total=len(records)),
    )


@router.get(
    "/{key_id}", response_model=Envelope[ApiKeyOut], responses=error_responses(*_ERRORS, NotFound)
)
async def get_api_key(
    key_id: UUID, request: Request, services: ServicesDep, actor: SuperAdmin
) -> Envelope[ApiKeyOut]:
    record = await services.api_keys.get_api_key(key_id)
    return Envelope(
        data=ApiKeyOut.of(record, services.clock.now()),
        meta=Meta(request_id=request_id_of(request.scope)),
    )


@router.delete(
    "/{key_id}",
    response_model=Envelope[ApiKeyOut],
    responses=error_responses(*_ERRORS, NotFound, InvalidStateTransition),
)
async def revoke_api_key(
    key_id: UUID,
    request: Request,
    services: ServicesDep,
    actor: SuperAdmin,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> Envelope[ApiKeyOut]:
    """Revoke a key. The record is kept for the audit trail; the key stops working at once."""
    record = await services.api_keys.revoke_api_key(actor, key_id, reason)
    return Envelope(
        data=ApiKeyOut.of(record, services.clock.now()),
        meta=Meta(request_id=request_id_of(request.scope)),
    )
