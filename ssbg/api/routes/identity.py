from fastapi import APIRouter, Request

from ssbg.api.dependencies import PrincipalDep
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.common import Envelope, Meta
from ssbg.api.schemas.identity import MeOut
from ssbg.domain.errors import AuthInvalidKey

router = APIRouter(tags=["identity"])


@router.get("/me", response_model=Envelope[MeOut], responses=error_responses(AuthInvalidKey))
async def me(request: Request, principal: PrincipalDep) -> Envelope[MeOut]:
    """The calling API key: id, role, description, department, expiry, MFA enrolment."""
    return Envelope(data=MeOut.of(principal), meta=Meta(request_id=request_id_of(request.scope)))
