"""The console's Restores pages (SPEC §3 Restores, §13.5). Each action calls the same service
method, after the same permission (and MFA) check, as its API route — so the audit log records
it exactly as over the API:

* ``POST /console/restores`` is ``POST /restores`` (the TOTP code from the form's
  ``totp_code`` instead of ``X-MFA-Token``; the policy says whether it is needed);
* ``POST /console/restores/{id}/approve`` · ``/reject`` are the API's, MFA required;
* ``POST /console/restores/{id}/download`` is ``POST /restores/{id}/token`` followed by
  ``GET /restores/{id}/download`` with that token: the token never reaches the browser, and
  the plaintext is streamed, segment by segment, as an attachment.
"""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from ssbg.api.dependencies import ServicesDep, authorize_actor
from ssbg.api.pagination import CursorParam, decode_restore_cursor, encode_restore_cursor
from ssbg.api.routes.restores import download_response
from ssbg.api.schemas.restores import Justification
from ssbg.console.dependencies import ConsoleCaller, FormCallerDep, PageCaller, offers, page
from ssbg.console.pages import choice, paging_links
from ssbg.console.rendering import ConsoleRoute, render
from ssbg.domain.errors import InvalidStateTransition, RestoreNotFound, ValidationFailed
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission
from ssbg.domain.restore_lifecycle import RestoreStatus
from ssbg.services.container import Services

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 20
RESTORES_PATH = "/console/restores"
Requester = Annotated[PageCaller, Depends(page(Permission.RESTORE_REQUEST))]
TotpField = Annotated[str | None, Form(max_length=16)]
_JUSTIFICATION: TypeAdapter[str] = TypeAdapter(Justification)


def _restore_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise RestoreNotFound() from None


def _backup_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise ValidationFailed(details={"backup_id": "Not a backup id."}) from None


async def _actor(
    caller: ConsoleCaller,
    services: Services,
    permission: Permission,
    *,
    mfa: bool = False,
    totp_code: str | None = None,
) -> Actor:
    """The API's ``require(permission, mfa=mfa)``, the code from the form's ``totp_code``."""
    return await authorize_actor(
        caller.session.authenticated,
        services,
        caller.context,
        permission,
        mfa=mfa,
        token=totp_code or None,
    )


@router.get("/restores")
async def restores_page(
    request: Request,
    services: ServicesDep,
    caller: Requester,
    status: str | None = None,
    backup_id: str | None = None,
    cursor: CursorParam = None,
) -> Response:
    """Restore requests, newest first; the request form (``backup_id`` filled in when the
    backup page links here)."""
    chosen_status = choice(RestoreStatus, "status", status)
    restores, next_position = await services.restores.list_restores(
        chosen_status, decode_restore_cursor(cursor) if cursor else None, PAGE_SIZE
    )
    chosen = {"status": chosen_status.value if chosen_status else ""}
    next_cursor = encode_restore_cursor(next_position) if next_position else None
    prefill = _backup_id(backup_id) if backup_id else None
    context = {
        **caller.layout(RESTORES_PATH),
        "title": "Restores",
        "restores": restores,
        "chosen": chosen,
        "statuses": list(RestoreStatus),
        "may_request": offers(caller, Permission.RESTORE_REQUEST),
        "backup_id": str(prefill) if prefill else "",
        **paging_links(RESTORES_PATH, chosen, cursor, next_cursor),
    }
    return render(request, "restores.html", context)


@router.post("/restores")
async def request_restore(
    services: ServicesDep,
    caller: FormCallerDep,
    backup_id: Annotated[str, Form(max_length=64)],
    justification: Annotated[str, Form(max_length=2000)],
    totp_code: TotpField = None,
) -> Response:
    """``services.restores.request_restore`` after the API's ``require(RESTORE_REQUEST)``; the
    policy decides whether the TOTP code is needed (``401 AUTH_MFA_REQUIRED`` otherwise)."""
    parsed = _backup_id(backup_id)
    try:
        reason = _JUSTIFICATION.validate_python(justification)
    except PydanticValidationError:
        raise ValidationFailed(details={"justification": "10 to 2000 characters."}) from None
    actor = await _actor(caller, services, Permission.RESTORE_REQUEST)
    outcome = await services.restores.request_restore(
        actor, parsed, reason, mfa_token=totp_code or None
    )
    return RedirectResponse(f"{RESTORES_PATH}/{outcome.restore.id}", status_code=303)


@router.get("/restores/{restore_id}")
async def restore_page(
    request: Request, restore_id: str, services: ServicesDep, caller: Requester
) -> Response:
    restore = await services.restores.get_restore(_restore_id(restore_id))
    mine = restore.requested_by == caller.actor.key_id
    pending = restore.status is RestoreStatus.PENDING_APPROVAL
    context = {
        **caller.layout(RESTORES_PATH),
        "title": f"Restore {restore.id}",
        "restore": restore,
        "mine": mine,
        "may_decide": pending and not mine and offers(caller, Permission.RESTORE_APPROVE),
        "may_download": (
            mine
            and restore.status is RestoreStatus.COMPLETED
            and offers(caller, Permission.RESTORE_REQUEST)
        ),
    }
    return render(request, "restore.html", context)


@router.post("/restores/{restore_id}/approve")
async def approve_restore(
    restore_id: str, services: ServicesDep, caller: FormCallerDep, totp_code: TotpField = None
) -> Response:
    """``services.restores.approve`` after the API's ``require(RESTORE_APPROVE, mfa=True)``;
    the service refuses the requester itself (four eyes)."""
    parsed = _restore_id(restore_id)
    actor = await _actor(
        caller, services, Permission.RESTORE_APPROVE, mfa=True, totp_code=totp_code
    )
    await services.restores.approve(actor, parsed)
    return RedirectResponse(f"{RESTORES_PATH}/{parsed}", status_code=303)


@router.post("/restores/{restore_id}/reject")
async def reject_restore(
    restore_id: str,
    services: ServicesDep,
    caller: FormCallerDep,
    reason: Annotated[str, Form(min_length=3, max_length=1000)],
    totp_code: TotpField = None,
) -> Response:
    """``services.restores.reject`` after the API's ``require(RESTORE_APPROVE, mfa=True)``."""
    parsed = _restore_id(restore_id)
    actor = await _actor(
        caller, services, Permission.RESTORE_APPROVE, mfa=True, totp_code=totp_code
    )
    await services.restores.reject(actor, parsed, reason)
    return RedirectResponse(f"{RESTORES_PATH}/{parsed}", status_code=303)


@router.post("/restores/{restore_id}/download")
async def download_restore(
    restore_id: str, services: ServicesDep, caller: FormCallerDep, totp_code: TotpField = None
) -> Response:
    """The API's token flow in one step: ``issue_token`` (policy, incident level and MFA
    checked again, ``RESTORE_TOKEN_ISSUE``), then ``open_download`` with that token, streamed
    as ``GET /restores/{id}/download`` streams it."""
    parsed = _restore_id(restore_id)
    actor = await _actor(caller, services, Permission.RESTORE_REQUEST)
    outcome = await services.restores.issue_token(actor, parsed, mfa_token=totp_code or None)
    if outcome.token is None:
        raise InvalidStateTransition("This restore waits for a second admin's approval.")
    stream = await services.restores.open_download(actor, parsed, outcome.token)
    return download_response(stream)
