"""The console's API keys pages (super_admin; SPEC §13.5): list, detail, create and revoke,
each through the same service method and permission check as ``/admin/api-keys``, so the audit
log records it exactly as over the API:

* ``POST /console/api-keys`` is ``POST /admin/api-keys`` — the body validated by the API's own
  ``ApiKeyCreate``; a ``super_admin`` key needs the form's ``totp_code`` (the service checks it,
  as it checks ``X-MFA-Token``). The new key and its TOTP secret are on the answer to that post
  only (``Cache-Control: no-store``, as every console page): no page shows them again;
* ``POST /console/api-keys/{id}/revoke`` is ``DELETE /admin/api-keys/{id}``, after a ticked
  confirmation."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from ssbg.api.dependencies import ServicesDep, authorize_actor
from ssbg.api.errors import record_error
from ssbg.api.schemas.api_keys import ApiKeyCreate, ApiKeyOut
from ssbg.console.dependencies import FormCallerDep, PageCaller, page
from ssbg.console.forms import as_request, list_of
from ssbg.console.rendering import ConsoleRoute, render
from ssbg.domain.enums import ApiKeyStatus, Role
from ssbg.domain.errors import AuthMfaInvalid, AuthMfaRequired, NotFound, ValidationFailed
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission
from ssbg.services.container import Services

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

API_KEYS_PATH = "/console/api-keys"
KeyManager = Annotated[PageCaller, Depends(page(Permission.API_KEY_MANAGE))]
TextField = Annotated[str, Form(max_length=2000)]
EMPTY_FORM = {"role": "", "description": "", "department": "", "expires_at": "", "allowed_ips": ""}


def _key_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("API key not found.") from None


def _utc_timestamp(value: str) -> str:
    """A ``datetime-local`` value (``2027-01-31T08:00``), read as UTC, as RFC 3339."""
    return f"{value}:00Z" if len(value) == len("2027-01-31T08:00") else f"{value}Z"


def _create_request(fields: dict[str, str]) -> ApiKeyCreate:
    body: dict[str, Any] = {
        "role": fields["role"],
        "description": fields["description"].strip(),
        "allowed_ips": list_of(fields["allowed_ips"]),
    }
    if fields["department"].strip():
        body["department"] = fields["department"].strip()
    if fields["expires_at"].strip():
        body["expires_at"] = _utc_timestamp(fields["expires_at"].strip())
    return as_request(ApiKeyCreate, body)


async def _list_context(services: Services, caller: PageCaller) -> dict[str, Any]:
    now = services.clock.now()
    records = await services.api_keys.list_api_keys()
    return {
        **caller.layout(API_KEYS_PATH),
        "title": "API keys",
        "keys": [ApiKeyOut.of(record, now) for record in records],
        "roles": list(Role),
        "form": EMPTY_FORM,
        "refusal": None,
    }


@router.get("/api-keys")
async def api_keys_page(request: Request, services: ServicesDep, caller: KeyManager) -> Response:
    """Every API key, revoked ones included, as ``GET /admin/api-keys``; the create form."""
    return render(request, "api_keys.html", await _list_context(services, caller))


@router.get("/api-keys/{key_id}")
async def api_key_page(
    request: Request, key_id: str, services: ServicesDep, caller: KeyManager
) -> Response:
    record = await services.api_keys.get_api_key(_key_id(key_id))
    key = ApiKeyOut.of(record, services.clock.now())
    context = {
        **caller.layout(API_KEYS_PATH),
        "title": f"API key {key.key_id}",
        "key": key,
        "revocable": key.status is not ApiKeyStatus.REVOKED,
    }
    return render(request, "api_key.html", context)


@router.post("/api-keys")
async def create_api_key(
    request: Request,
    services: ServicesDep,
    caller: FormCallerDep,
    role: Annotated[str, Form(max_length=20)],
    description: TextField,
    department: TextField = "",
    expires_at: Annotated[str, Form(max_length=40)] = "",
    allowed_ips: TextField = "",
    totp_code: Annotated[str | None, Form(max_length=16)] = None,
) -> Response:
    """``services.api_keys.create_api_key`` after the API's ``require(API_KEY_MANAGE)``; the
    answer shows the key (and TOTP secret) this once. Refused (the form, the TOTP code): the
    list and the form again, as filled, with the refusal."""
    actor = await authorize_actor(
        caller.session.authenticated, services, caller.context, Permission.API_KEY_MANAGE
    )
    filled = {
        "role": role,
        "description": description,
        "department": department,
        "expires_at": expires_at,
        "allowed_ips": allowed_ips,
    }
    try:
        body = _create_request(filled)
        issued = await services.api_keys.create_api_key(
            actor, body.to_request(), mfa_token=totp_code or None
        )
    except (ValidationFailed, AuthMfaRequired, AuthMfaInvalid) as error:
        await record_error(request, error)
        reader = PageCaller(caller, actor)
        context = {**await _list_context(services, reader), "form": filled, "refusal": error}
        return render(request, "api_keys.html", context, status=error.status)
    context = {
        **caller.layout(API_KEYS_PATH),
        "title": "API key created",
        "key": ApiKeyOut.of(issued.record, services.clock.now()),
        "api_key": issued.api_key,
        "totp_secret": issued.totp_secret,
        "totp_uri": issued.totp_uri,
    }
    return render(request, "api_key_created.html", context, status=201)


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(
    key_id: str,
    services: ServicesDep,
    caller: FormCallerDep,
    reason: Annotated[str | None, Form(max_length=500)] = None,
    confirm: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    """``services.api_keys.revoke_api_key`` after the API's ``require(API_KEY_MANAGE)``, once
    the confirmation box is ticked (else 422 and nothing is done)."""
    parsed = _key_id(key_id)
    actor: Actor = await authorize_actor(
        caller.session.authenticated, services, caller.context, Permission.API_KEY_MANAGE
    )
    if confirm != "yes":
        raise ValidationFailed(details={"confirm": "Tick the box to confirm the revocation."})
    await services.api_keys.revoke_api_key(actor, parsed, (reason or "").strip() or None)
    return RedirectResponse(f"{API_KEYS_PATH}/{parsed}", status_code=303)
