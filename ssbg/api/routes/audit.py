from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from ssbg.api.dependencies import ContextDep, ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.audit import AuditEntryOut
from ssbg.api.schemas.common import ListEnvelope, ListMeta
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import AuthInvalidKey, ForbiddenRole
from ssbg.domain.identity import Principal
from ssbg.domain.permissions import Permission
from ssbg.repositories.audit_repository import AuditEntryFilters

router = APIRouter(prefix="/audit", tags=["audit"])
Reviewer = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]


@router.get(
    "/entries",
    response_model=ListEnvelope[AuditEntryOut],
    responses=error_responses(AuthInvalidKey, ForbiddenRole),
)
async def list_entries(
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    principal: Reviewer,
    action: AuditAction | None = None,
    result: AuditResult | None = None,
    actor_id: UUID | None = None,
    resource: Annotated[str | None, Query(max_length=200)] = None,
    occurred_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    occurred_to: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    after_sequence: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> ListEnvelope[AuditEntryOut]:
    """Audit entries in ascending sequence order. Page with ``after_sequence``: pass the
    previous page's ``meta.next_cursor``. This read is itself recorded (``AUDIT_READ``)."""
    filters = AuditEntryFilters(
        action=action.value if action else None,
        result=result.value if result else None,
        actor_id=actor_id,
        resource=resource,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
    )
    page = await services.audit.list_entries(principal, context, filters, after_sequence, limit)
    return ListEnvelope(
        data=[AuditEntryOut.of(entry) for entry in page.entries],
        meta=ListMeta(
            request_id=request_id_of(request.scope),
            next_cursor=str(page.next_after_sequence) if page.next_after_sequence else None,
        ),
    )
