"""Who is calling a console page: the session behind its cookie, checked as the API checks a
key (``ConsoleSessionService.resume``), then the page's permission through the API's own
``authorize_actor`` — the same incident guard, role check and audit entries as the API."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Form, Request

from ssbg.api.dependencies import ContextDep, ServicesDep, authorize_actor
from ssbg.console.rendering import LAYOUT_STATE, CsrfRefused, SignInRequired
from ssbg.console.security import SESSION_COOKIE
from ssbg.domain.identity import Actor, RequestContext
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.permissions import Permission, allowed_in_lockdown, is_allowed
from ssbg.services.console_sessions import ResumedSession

# The console's pages, in the order of the navigation, each with what a role needs to see it.
NAVIGATION: tuple[tuple[str, str, Permission], ...] = (
    ("Overview", "/console/", Permission.IDENTITY_READ),
    ("Backups", "/console/backups", Permission.BACKUP_READ),
    ("Restores", "/console/restores", Permission.RESTORE_REQUEST),
    ("Alerts", "/console/alerts", Permission.ALERT_READ),
    ("Incident", "/console/incident", Permission.INCIDENT_READ),
    ("Audit", "/console/audit", Permission.AUDIT_READ),
    ("Keys", "/console/keys", Permission.KEY_READ),
    ("API keys", "/console/api-keys", Permission.API_KEY_MANAGE),
    ("Policies", "/console/policies", Permission.POLICY_MANAGE),
)


@dataclass(frozen=True, slots=True)
class ConsoleCaller:
    session: ResumedSession
    secret: str  # the cookie's session secret: for the CSRF check only
    context: RequestContext

    def layout(self, current: str | None = None) -> dict[str, Any]:
        principal = self.session.authenticated.principal
        return {
            "caller": principal,
            "nav": [
                {"label": label, "path": path, "current": path == current}
                for label, path, permission in NAVIGATION
                if is_allowed(principal.role, permission)
            ],
            "csrf_token": self.session.csrf_token,
        }


async def console_caller(
    request: Request, services: ServicesDep, context: ContextDep
) -> ConsoleCaller:
    secret = request.cookies.get(SESSION_COOKIE)
    session = await services.console_sessions.resume(secret, context)
    if session is None or secret is None:
        raise SignInRequired()
    caller = ConsoleCaller(session, secret, context)
    setattr(request.state, LAYOUT_STATE, caller.layout())
    return caller


CallerDep = Annotated[ConsoleCaller, Depends(console_caller)]


@dataclass(frozen=True, slots=True)
class PageCaller:
    caller: ConsoleCaller
    actor: Actor

    def layout(self, current: str | None = None) -> dict[str, Any]:
        return self.caller.layout(current)


def offers(caller: PageCaller, permission: Permission) -> bool:
    """Whether to show a form whose action needs ``permission``: the role holds it and, at
    incident level 3, it stays open (the action would be refused 423 otherwise)."""
    level = caller.caller.session.authenticated.incident_level
    if level is IncidentLevel.LOCKDOWN and not allowed_in_lockdown(permission):
        return False
    return is_allowed(caller.actor.principal.role, permission)


def page(permission: Permission) -> Callable[..., Awaitable[PageCaller]]:
    """A page for callers whose role holds ``permission`` (403 page, audited, otherwise; 423
    at incident level 3 unless investigators need it) — exactly the API's ``require``."""

    async def allowed(caller: CallerDep, services: ServicesDep) -> PageCaller:
        actor = await authorize_actor(
            caller.session.authenticated, services, caller.context, permission
        )
        return PageCaller(caller, actor)

    allowed.__name__ = f"console_page_{permission.name.lower()}"
    return allowed


async def checked_form(
    caller: CallerDep,
    services: ServicesDep,
    csrf_token: Annotated[str | None, Form(max_length=256)] = None,
) -> ConsoleCaller:
    """The caller of a state-changing form, whose ``csrf_token`` must be its session's (else
    a 403 page and nothing is done)."""
    if not services.console_sessions.session_token_matches(caller.secret, csrf_token):
        raise CsrfRefused()
    return caller


FormCallerDep = Annotated[ConsoleCaller, Depends(checked_form)]
