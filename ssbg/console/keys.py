"""The console's Keys page (SPEC §13.1, §13.5): the key-version inventory of ``GET /admin/keys``
and its actions, each the API's own service method after the API's own permission and MFA
check (the code from the form's ``totp_code`` instead of ``X-MFA-Token``), so the audit log
records it exactly as over the API:

* ``POST /console/keys/rotate`` is ``POST /admin/keys/rotate``;
* ``POST /console/keys/rewrap`` is ``POST /admin/keys/rewrap`` (what is left to rewrap is the
  version's protected backups, shown on its page);
* ``POST /console/keys/{version}/crypto-shred`` is ``POST /admin/keys/{version}/crypto-shred``,
  with the same typed confirmation ``DESTROY <version>``;
* ``GET /console/keys/{version}/certificate`` downloads the destruction certificate: the very
  JSON the API's ``GET /admin/keys/{version}`` holds in ``destruction_certificate``.

A refused action (a missing or wrong TOTP code, a wrong confirmation, a held backup, the active
version, the policy) shows the page again with the contract's status, code and details, and
changes nothing."""

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from ssbg.api.dependencies import ServicesDep, authorize_actor
from ssbg.api.errors import record_error
from ssbg.console.dependencies import ConsoleCaller, FormCallerDep, PageCaller, offers, page
from ssbg.console.rendering import ConsoleRoute, render
from ssbg.domain.enums import KeyVersionStatus
from ssbg.domain.errors import AuthInvalidKey, NotFound, SsbgError
from ssbg.domain.identity import Actor
from ssbg.domain.key_versions import shred_confirmation
from ssbg.domain.permissions import Permission
from ssbg.services.container import Services

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

KEYS_PATH = "/console/keys"
_VERSION = re.compile(r"P-[0-9]{3,6}")
KeyReader = Annotated[PageCaller, Depends(page(Permission.KEY_READ))]
# As the API's schemas (ssbg.api.schemas.keys).
ReasonField = Annotated[str, Form(min_length=3, max_length=1000)]
TotpField = Annotated[str | None, Form(max_length=16)]
VersionField = Annotated[str, Form(pattern=r"^P-\d{3,6}$")]
ConfirmationField = Annotated[str | None, Form(max_length=40)]
NO_FORM = {"action": "", "reason": "", "from_version": ""}  # nothing filled in yet


def _version(raw: str) -> str:
    if not _VERSION.fullmatch(raw):
        raise NotFound(f"No key version {raw}.")
    return raw


async def _keys_context(services: Services, caller: PageCaller) -> dict[str, Any]:
    views = await services.keys.list_keys()
    return {
        **caller.layout(KEYS_PATH),
        "title": "Keys",
        "keys": views,
        "may_manage": offers(caller, Permission.KEY_MANAGE),
        "rewrappable": [
            view.record.version
            for view in views
            if view.record.status is KeyVersionStatus.RETIRED and view.backups
        ],
        "refusal": None,
        "form": NO_FORM,
    }


@router.get("/keys")
async def keys_page(request: Request, services: ServicesDep, caller: KeyReader) -> Response:
    """Every key version, as ``GET /admin/keys``: status, times, backups and bytes protected."""
    return render(request, "keys.html", await _keys_context(services, caller))


async def _key_context(services: Services, caller: PageCaller, version: str) -> dict[str, Any]:
    view = await services.keys.get_key(version)
    return {
        **caller.layout(KEYS_PATH),
        "title": f"Key {view.record.version}",
        "key": view,
        "may_manage": offers(caller, Permission.KEY_MANAGE),
        "confirmation": shred_confirmation(view.record.version),
        "refusal": None,
        "form": NO_FORM,
    }


@router.get("/keys/{version}")
async def key_page(
    request: Request, version: str, services: ServicesDep, caller: KeyReader
) -> Response:
    """One key version: what it still protects, the shred form, or its certificate."""
    return render(request, "key.html", await _key_context(services, caller, _version(version)))


@router.get("/keys/{version}/certificate")
async def certificate_download(version: str, services: ServicesDep, caller: KeyReader) -> Response:
    """The signed destruction certificate, as JSON: the bytes the API's
    ``GET /admin/keys/{version}`` answers in ``destruction_certificate``."""
    view = await services.keys.get_key(_version(version))
    certificate = view.record.destruction_certificate
    if certificate is None:
        raise NotFound(f"{version} is not destroyed: there is no certificate.")
    name = f"{view.record.version}-destruction-certificate.json"
    return JSONResponse(
        certificate, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


Reshow = Callable[[PageCaller], Awaitable[dict[str, Any]]]


async def _manage(
    request: Request,
    services: Services,
    caller: ConsoleCaller,
    totp_code: str | None,
    reshow: tuple[str, Reshow, dict[str, str]],
    action: Callable[[Actor], Awaitable[Response]],
) -> Response:
    """``action`` after the API's ``require(Permission.KEY_MANAGE, mfa=True)``. Refused for
    the role (or in lockdown): the error page. Refused after that (the TOTP code, the service's
    checks): the page again — ``reshow`` is its template, context and the form as filled —
    with the refusal's status, code and details, recorded as the API records it."""
    actor = None
    try:
        actor = await authorize_actor(
            caller.session.authenticated,
            services,
            caller.context,
            Permission.KEY_MANAGE,
            mfa=True,
            token=totp_code or None,
        )
        return await action(actor)
    except SsbgError as error:
        if isinstance(error, AuthInvalidKey | NotFound) or error.status >= 500:
            raise
        if actor is None and error.code not in ("AUTH_MFA_REQUIRED", "AUTH_MFA_INVALID"):
            raise  # the role, or the incident level: not a page this caller may see again
        await record_error(request, error)
        template, context_of, form = reshow
        # the role check passed: a super_admin, who may read the page
        reader = PageCaller(caller, Actor(caller.session.authenticated.principal, caller.context))
        context = {**await context_of(reader), "refusal": error, "form": {**NO_FORM, **form}}
        return render(request, template, context, status=error.status)


@router.post("/keys/rotate")
async def rotate_key(
    request: Request,
    services: ServicesDep,
    caller: FormCallerDep,
    reason: ReasonField,
    totp_code: TotpField = None,
) -> Response:
    """``services.keys.rotate``: a new ACTIVE version, the previous one RETIRED."""

    async def rotate(actor: Actor) -> Response:
        await services.keys.rotate(actor, reason, via="console")
        return RedirectResponse(KEYS_PATH, status_code=303)

    async def context_of(reader: PageCaller) -> dict[str, Any]:
        return await _keys_context(services, reader)

    form = {"action": "rotate", "reason": reason}
    return await _manage(
        request, services, caller, totp_code, ("keys.html", context_of, form), rotate
    )


@router.post("/keys/rewrap")
async def rewrap_keys(
    request: Request,
    services: ServicesDep,
    caller: FormCallerDep,
    from_version: VersionField,
    reason: ReasonField,
    totp_code: TotpField = None,
) -> Response:
    """``services.keys.rewrap``: every backup under ``from_version`` sealed to the active
    version; its page then shows what is left (nothing, unless interrupted: post again)."""

    async def rewrap(actor: Actor) -> Response:
        await services.keys.rewrap(actor, from_version, reason)
        return RedirectResponse(f"{KEYS_PATH}/{from_version}", status_code=303)

    async def context_of(reader: PageCaller) -> dict[str, Any]:
        return await _keys_context(services, reader)

    form = {"action": "rewrap", "from_version": from_version, "reason": reason}
    return await _manage(
        request, services, caller, totp_code, ("keys.html", context_of, form), rewrap
    )


@router.post("/keys/{version}/crypto-shred")
async def crypto_shred_key(
    request: Request,
    version: str,
    services: ServicesDep,
    caller: FormCallerDep,
    reason: ReasonField,
    confirmation: ConfirmationField = None,
    totp_code: TotpField = None,
) -> Response:
    """``services.keys.crypto_shred`` with the typed confirmation ``DESTROY <version>``."""
    checked = _version(version)

    async def shred(actor: Actor) -> Response:
        await services.keys.crypto_shred(actor, checked, confirmation, reason)
        return RedirectResponse(f"{KEYS_PATH}/{checked}", status_code=303)

    async def context_of(reader: PageCaller) -> dict[str, Any]:
        return await _key_context(services, reader, checked)

    form = {"action": "shred", "reason": reason}
    return await _manage(
        request, services, caller, totp_code, ("key.html", context_of, form), shred
    )
