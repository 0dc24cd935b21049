"""The console's Audit page (SPEC §3 Audit, §13.5), for auditors and admins as the API allows
(``audit:read``). Each read and action goes through the same service as its API route, after
the same permission check:

* ``GET /console/audit`` is ``GET /audit/entries`` (the same filters, ``after_sequence``
  paging, and the same ``AUDIT_READ`` record of the read);
* ``POST /console/audit/validate`` is ``POST /audit/validate`` (``AUDIT_VALIDATE``, its
  ``via`` saying ``console``);
* ``POST /console/audit/export`` is ``GET /audit/export``: the evidence bundle streamed as a
  download (``AUDIT_EXPORT``).
"""

from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from ssbg.api.dependencies import ServicesDep, authorize_actor
from ssbg.api.routes.audit import bundle_response
from ssbg.api.schemas.common import StoredDatetime
from ssbg.console.dependencies import FormCallerDep, PageCaller, page
from ssbg.console.pages import choice
from ssbg.console.rendering import ConsoleRoute, render
from ssbg.domain.audit_verification import SequenceRange
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import ValidationFailed
from ssbg.domain.permissions import Permission
from ssbg.domain.queries import AuditEntryFilters

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 50
AUDIT_PATH = "/console/audit"
MAX_SEQUENCE = 2**63 - 1
Reviewer = Annotated[PageCaller, Depends(page(Permission.AUDIT_READ))]
SequenceField = Annotated[int | None, Form(ge=1, le=MAX_SEQUENCE)]
_MOMENT: TypeAdapter[Any] = TypeAdapter(StoredDatetime)


def _moment(name: str, value: str | None) -> Any:
    if not value:
        return None
    try:
        return _MOMENT.validate_python(value)
    except PydanticValidationError:
        raise ValidationFailed(
            details={name: "An RFC 3339 date-time, for example 2026-01-31T08:00:00Z."}
        ) from None


def _actor_id(value: str | None) -> UUID | None:
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise ValidationFailed(details={"actor_id": "Not a key id."}) from None


def _after(value: str | None) -> int:
    if not value:
        return 0
    if not value.isascii() or not value.isdigit() or int(value) > MAX_SEQUENCE:
        raise ValidationFailed(details={"after_sequence": "Not a sequence number."})
    return int(value)


@router.get("/audit")
async def audit_page(
    request: Request,
    services: ServicesDep,
    caller: Reviewer,
    action: str | None = None,
    result: str | None = None,
    actor_id: str | None = None,
    resource: str | None = None,
    occurred_from: Annotated[str | None, Query(alias="from")] = None,
    occurred_to: Annotated[str | None, Query(alias="to")] = None,
    after_sequence: str | None = None,
) -> Response:
    """Entries in ascending sequence order, 50 a page, through ``services.audit.list_entries``
    (which records the read as ``AUDIT_READ``, as over the API)."""
    if resource and len(resource) > 200:
        raise ValidationFailed(details={"resource": "At most 200 characters."})
    chosen_action = choice(AuditAction, "action", action)
    chosen_result = choice(AuditResult, "result", result)
    filters = AuditEntryFilters(
        action=chosen_action.value if chosen_action else None,
        result=chosen_result.value if chosen_result else None,
        actor_id=_actor_id(actor_id),
        resource=resource or None,
        occurred_from=_moment("from", occurred_from),
        occurred_to=_moment("to", occurred_to),
    )
    after = _after(after_sequence)
    listing = await services.audit.list_entries(caller.actor, filters, after, PAGE_SIZE)
    chosen = {
        "action": filters.action or "",
        "result": filters.result or "",
        "actor_id": str(filters.actor_id) if filters.actor_id else "",
        "resource": resource or "",
        "from": occurred_from or "",
        "to": occurred_to or "",
    }
    query = {name: value for name, value in chosen.items() if value}
    next_link = None
    if listing.next_after_sequence:
        next_link = f"{AUDIT_PATH}?" + urlencode(
            {**query, "after_sequence": listing.next_after_sequence}
        )
    context = {
        **caller.layout(AUDIT_PATH),
        "title": "Audit",
        "entries": listing.entries,
        "chosen": chosen,
        "actions": list(AuditAction),
        "results": list(AuditResult),
        "first_link": AUDIT_PATH + ("?" + urlencode(query) if query else ""),
        "paged": after > 0,
        "next_link": next_link,
        "validation": None,
    }
    return render(request, "audit.html", context)


@router.post("/audit/validate")
async def validate_chain(
    request: Request,
    services: ServicesDep,
    caller: FormCallerDep,
    from_sequence: SequenceField = None,
    to_sequence: SequenceField = None,
) -> Response:
    """``services.audit_validation.validate_chain`` after the API's ``require(AUDIT_READ)``:
    valid, or the first invalid sequence and the reason (a 200 either way, as over the API)."""
    requested = SequenceRange(from_sequence, to_sequence)
    actor = await authorize_actor(
        caller.session.authenticated, services, caller.context, Permission.AUDIT_READ
    )
    outcome = await services.audit_validation.validate_chain(actor, requested, via="console")
    context = {
        **caller.layout(AUDIT_PATH),
        "title": "Audit validation",
        "validation": outcome.as_dict(),
        "requested": requested,
    }
    return render(request, "audit_validation.html", context)


@router.post("/audit/export")
async def export_bundle(
    services: ServicesDep,
    caller: FormCallerDep,
    from_sequence: SequenceField = None,
    to_sequence: SequenceField = None,
) -> StreamingResponse:
    """``services.audit_export.export_bundle`` after the API's ``require(AUDIT_READ)``,
    streamed as ``GET /audit/export`` streams it."""
    requested = SequenceRange(from_sequence, to_sequence)
    actor = await authorize_actor(
        caller.session.authenticated, services, caller.context, Permission.AUDIT_READ
    )
    return bundle_response(await services.audit_export.export_bundle(actor, requested))
