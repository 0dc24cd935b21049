"""The console's Alerts and Incident pages (SPEC §13.2, §13.5). Each action calls the same
service method, after the same permission (and MFA) check, as its API route — so the audit log
records it exactly as over the API: ``POST /console/alerts/{id}/{step}`` is
``POST /admin/alerts/{id}/{step}`` and ``POST /console/incident`` is ``POST /admin/incident``."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from ssbg.api.dependencies import ServicesDep, authorize_actor
from ssbg.api.errors import record_error
from ssbg.api.pagination import CursorParam, decode_alert_cursor, encode_alert_cursor
from ssbg.console.dependencies import FormCallerDep, PageCaller, offers, page
from ssbg.console.pages import INCIDENT_EFFECTS, choice, paging_links
from ssbg.console.rendering import ConsoleRoute, render
from ssbg.domain.alerts import ALERT_STEPS, AlertSeverity, AlertStatus, AlertStep
from ssbg.domain.errors import AuthMfaInvalid, AuthMfaRequired, ValidationFailed
from ssbg.domain.identity import Actor
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.permissions import Permission
from ssbg.domain.queries import AlertFilters
from ssbg.services.container import Services
from ssbg.services.detection.alerts import AlertNotFound

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 20
ALERTS_PATH = "/console/alerts"
INCIDENT_PATH = "/console/incident"
AlertReader = Annotated[PageCaller, Depends(page(Permission.ALERT_READ))]
IncidentReader = Annotated[PageCaller, Depends(page(Permission.INCIDENT_READ))]
# As the API's schemas: AlertStepIn / AlertResolveIn, IncidentLevelSet.
NoteField = Annotated[str | None, Form(max_length=2000)]
MFA_MESSAGES = {
    AuthMfaRequired.code: "Enter your current TOTP code: this action needs it.",
    AuthMfaInvalid.code: "That TOTP code is wrong or was already used: nothing was changed.",
}


def _alert_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise AlertNotFound() from None


@router.get("/alerts")
async def alerts_page(
    request: Request,
    services: ServicesDep,
    caller: AlertReader,
    status: str | None = None,
    severity: str | None = None,
    cursor: CursorParam = None,
) -> Response:
    """Alerts, newest first, through the same listing as ``GET /admin/alerts``."""
    chosen_status = choice(AlertStatus, "status", status)
    chosen_severity = choice(AlertSeverity, "severity", severity)
    listing = await services.alerts.list_alerts(
        AlertFilters(
            status=chosen_status.value if chosen_status else None,
            severity=chosen_severity.value if chosen_severity else None,
        ),
        decode_alert_cursor(cursor) if cursor else None,
        PAGE_SIZE,
    )
    chosen = {
        "status": chosen_status.value if chosen_status else "",
        "severity": chosen_severity.value if chosen_severity else "",
    }
    next_cursor = encode_alert_cursor(listing.next_cursor) if listing.next_cursor else None
    open_alerts = await services.console_overview.open_alerts()
    context = {
        **caller.layout(ALERTS_PATH),
        "title": "Alerts",
        "alerts": listing.items,
        "open_alerts": open_alerts,
        "chosen": chosen,
        "statuses": list(AlertStatus),
        "severities": list(AlertSeverity),
        **paging_links(ALERTS_PATH, chosen, cursor, next_cursor),
    }
    return render(request, "alerts.html", context)


@router.get("/alerts/{alert_id}")
async def alert_page(
    request: Request, alert_id: str, services: ServicesDep, caller: AlertReader
) -> Response:
    view = await services.alerts.get_alert(_alert_id(alert_id))
    steps = [step for step, (sources, _) in ALERT_STEPS.items() if view.status in sources]
    context = {
        **caller.layout(ALERTS_PATH),
        "title": f"Alert {view.alert.id}",
        "view": view,
        "alert": view.alert,
        "steps": steps if offers(caller, Permission.ALERT_MANAGE) else [],
    }
    return render(request, "alert.html", context)


@router.post("/alerts/{alert_id}/{step}")
async def take_alert_step(
    alert_id: str,
    step: AlertStep,
    services: ServicesDep,
    caller: FormCallerDep,
    note: NoteField = None,
) -> Response:
    """Acknowledge, investigate or resolve (with a note): ``services.alerts.take_step`` after
    the API's ``require(Permission.ALERT_MANAGE)``."""
    parsed = _alert_id(alert_id)
    actor = await authorize_actor(
        caller.session.authenticated, services, caller.context, Permission.ALERT_MANAGE
    )
    note = note.strip() if note else None
    if step is AlertStep.RESOLVE and not note:
        raise ValidationFailed(details={"note": "Say how the alert was resolved."})
    await services.alerts.take_step(actor, parsed, step, note or None)
    return RedirectResponse(f"{ALERTS_PATH}/{parsed}", status_code=303)


async def _incident_context(services: Services, caller: PageCaller) -> dict[str, Any]:
    status = await services.incidents.get_status()
    return {
        **caller.layout(INCIDENT_PATH),
        "title": "Incident",
        "incident": status,
        "reverted": status.level != status.stored_level,
        "effects": INCIDENT_EFFECTS,
        "levels": list(IncidentLevel),
        "may_set": offers(caller, Permission.INCIDENT_SET),
        "mfa_error": None,
        "form": {"level": str(min(status.level + 1, IncidentLevel.LOCKDOWN)), "reason": ""},
    }


@router.get("/incident")
async def incident_page(
    request: Request, services: ServicesDep, caller: IncidentReader
) -> Response:
    return render(request, "incident.html", await _incident_context(services, caller))


@router.post("/incident")
async def set_incident(
    request: Request,
    services: ServicesDep,
    caller: FormCallerDep,
    level: Annotated[int, Form(ge=0, le=3)],
    reason: Annotated[str, Form(min_length=3, max_length=1000)],
    totp_code: Annotated[str | None, Form(max_length=16)] = None,
) -> Response:
    """``services.incidents.set_level`` after the API's ``require(Permission.INCIDENT_SET,
    mfa=True)``, the code coming from the form's ``totp_code``. A missing or wrong code shows
    the form again (401) and changes nothing."""
    try:
        actor = await authorize_actor(
            caller.session.authenticated,
            services,
            caller.context,
            Permission.INCIDENT_SET,
            mfa=True,
            token=totp_code or None,
        )
    except (AuthMfaRequired, AuthMfaInvalid) as error:
        await record_error(request, error)
        # the role check passed before MFA was asked: a super_admin, who may read the page
        reader = PageCaller(caller, Actor(caller.session.authenticated.principal, caller.context))
        context = {
            **await _incident_context(services, reader),
            "mfa_error": {"code": error.code, "message": MFA_MESSAGES[error.code]},
            "form": {"level": str(level), "reason": reason},
        }
        return render(request, "incident.html", context, status=error.status)
    await services.incidents.set_level(actor, IncidentLevel(level), reason)
    return RedirectResponse(INCIDENT_PATH, status_code=303)
