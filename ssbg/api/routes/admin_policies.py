from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from ssbg.api.dependencies import ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.common import Envelope, ListEnvelope, ListMeta, Meta
from ssbg.api.schemas.policies import PolicyCreate, PolicyOut, PolicyPatch
from ssbg.domain.errors import AuthInvalidKey, Conflict, ForbiddenRole, NotFound
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission

router = APIRouter(prefix="/admin/policies", tags=["admin: policies"])
Admin = Annotated[Actor, Depends(require(Permission.POLICY_MANAGE))]
_ERRORS = (AuthInvalidKey, ForbiddenRole)


@router.post(
    "",
    status_code=201,
    response_model=Envelope[PolicyOut],
    responses=error_responses(*_ERRORS, Conflict),
)
async def create_policy(
    body: PolicyCreate,
    request: Request,
    services: ServicesDep,
    actor: Admin,
) -> Envelope[PolicyOut]:
    """Create a custom policy record (SPEC §8). Evaluated after the built-in rules, by priority."""
    policy = await services.policies.create_policy(actor, body.to_request())
    return Envelope(data=PolicyOut.of(policy), meta=Meta(request_id=request_id_of(request.scope)))


@router.get("", response_model=ListEnvelope[PolicyOut], responses=error_responses(*_ERRORS))
async def list_policies(
    request: Request, services: ServicesDep, actor: Admin
) -> ListEnvelope[PolicyOut]:
    """Every policy record in evaluation order (priority, then name)."""
    policies = await services.policies.list_policies()
    return ListEnvelope(
        data=[PolicyOut.of(policy) for policy in policies],
        meta=ListMeta(request_id=request_id_of(request.scope), total=len(policies)),
    )


@router.get(
    "/{policy_id}",
    response_model=Envelope[PolicyOut],
    responses=error_responses(*_ERRORS, NotFound),
)
async def get_policy(
    policy_id: UUID, request: Request, services: ServicesDep, actor: Admin
) -> Envelope[PolicyOut]:
    policy = await services.policies.get_policy(policy_id)
    return Envelope(data=PolicyOut.of(policy), meta=Meta(request_id=request_id_of(request.scope)))


@router.patch(
    "/{policy_id}",
    response_model=Envelope[PolicyOut],
    responses=error_responses(*_ERRORS, NotFound, Conflict),
)
async def update_policy(
    policy_id: UUID,
    body: PolicyPatch,
    request: Request,
    services: ServicesDep,
    actor: Admin,
) -> Envelope[PolicyOut]:
    """Change fields of a policy record; a given ``rule`` replaces the whole rule."""
    policy = await services.policies.update_policy(actor, policy_id, body.to_changes())
    return Envelope(data=PolicyOut.of(policy), meta=Meta(request_id=request_id_of(request.scope)))
