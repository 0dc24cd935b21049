"""Dependencies routes declare: services, caller context, authentication, role, MFA.

A route states what it needs in its signature, and nothing else decides it:

    actor: Actor = Depends(require(Permission.POLICY_MANAGE))
    actor: Actor = Depends(require(Permission.INCIDENT_SET, mfa=True))
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader

from ssbg.api.request_context import request_id_of
from ssbg.domain.identity import Actor, Principal, RequestContext
from ssbg.domain.network import IPNetwork, client_ip, parse_networks
from ssbg.domain.permissions import Permission
from ssbg.services.auth_service import Authenticated
from ssbg.services.container import Services

# Dependencies are ``async def`` although they wait for nothing: FastAPI runs a plain ``def``
# dependency in a worker thread, a thread hop per dependency per request.


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> list[IPNetwork]:
    return parse_networks(entries)


async def get_request_context(request: Request, services: ServicesDep) -> RequestContext:
    peer = request.client.host if request.client else None
    trusted = trusted_networks(tuple(services.settings.trusted_proxies))
    source_ip = client_ip(peer, request.headers.get("x-forwarded-for"), trusted)
    return RequestContext(request_id=request_id_of(request.scope), source_ip=source_ip)


ContextDep = Annotated[RequestContext, Depends(get_request_context)]


# Declared as the API's security scheme (so the OpenAPI description says which operations need
# a key); ``auto_error=False``: a missing key is refused by the auth service like a wrong one
# (401 ``AUTH_INVALID_KEY``, audited and counted), not by FastAPI.
api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", description="An SSBG API key.", auto_error=False
)


async def authenticate(
    services: ServicesDep,
    context: ContextDep,
    x_api_key: Annotated[str | None, Depends(api_key_header)] = None,
) -> Authenticated:
    return await services.auth.authenticate(x_api_key, context)


AuthenticatedDep = Annotated[Authenticated, Depends(authenticate)]


async def principal(authenticated: AuthenticatedDep) -> Principal:
    return authenticated.principal


PrincipalDep = Annotated[Principal, Depends(principal)]


MfaTokenDep = Annotated[
    str | None,
    Header(
        alias="X-MFA-Token",
        min_length=1,
        description=(
            "The caller's current TOTP code, where MFA is required; an empty value is a 422, "
            "a wrong or reused code a 401 AUTH_MFA_INVALID."
        ),
    ),
]


@dataclass(frozen=True)
class Requirement:
    """What a ``require`` dependency checks: ``ssbg.api.contract`` declares the responses of
    every route from it (403, 423 unless allowed in lockdown, the MFA 401s)."""

    permission: Permission
    mfa: bool


def requirement_of(call: object) -> Requirement | None:
    found = getattr(call, "ssbg_requirement", None)
    return found if isinstance(found, Requirement) else None


async def authorize_actor(
    authenticated: Authenticated,
    services: Services,
    context: RequestContext,
    permission: Permission,
    *,
    mfa: bool = False,
    token: str | None = None,
) -> Actor:
    """What every ``require`` checks, in order, each refusal audited by its service: 423 at
    incident level 3 (judged on the level read with the key) unless investigators need
    ``permission``, 403 unless the role holds it, then MFA if asked. The web console's pages
    check their callers through this too (``ssbg.console``): never a second path."""
    actor = Actor(authenticated.principal, context)
    await services.incidents.guard(actor, permission, authenticated.incident_level)
    await services.auth.authorize(actor, permission)
    if mfa:
        await services.auth.verify_mfa(actor, token)
    return actor


def require(permission: Permission, *, mfa: bool = False) -> Callable[..., Awaitable[Actor]]:
    """Refused at incident level 3 unless investigators need ``permission`` (423
    ``INCIDENT_LOCKDOWN``); the caller must hold it (403 ``FORBIDDEN_ROLE``), then pass MFA if
    asked; the use case then gets the caller and its request as one :class:`Actor`. Only a
    dependency that checks MFA declares the ``X-MFA-Token`` header."""

    async def check(
        authenticated: Authenticated, services: Services, context: RequestContext, token: str | None
    ) -> Actor:
        return await authorize_actor(
            authenticated, services, context, permission, mfa=mfa, token=token
        )

    dependency: Callable[..., Awaitable[Actor]]
    if mfa:

        async def with_mfa(
            authenticated: AuthenticatedDep,
            services: ServicesDep,
            context: ContextDep,
            mfa_token: MfaTokenDep = None,
        ) -> Actor:
            return await check(authenticated, services, context, mfa_token)

        dependency = with_mfa
    else:

        async def without_mfa(
            authenticated: AuthenticatedDep, services: ServicesDep, context: ContextDep
        ) -> Actor:
            return await check(authenticated, services, context, None)

        dependency = without_mfa

    dependency.__name__ = f"require_{permission.name.lower()}{'_mfa' if mfa else ''}"
    dependency.ssbg_requirement = Requirement(permission, mfa)  # type: ignore[attr-defined]
    return dependency
