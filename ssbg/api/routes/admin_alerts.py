"""Alerts (SPEC §13.2): read them, and acknowledge, investigate and resolve them."""

from collections.abc import Awaitable, Callable
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from ssbg.api.dependencies import ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.pagination import CursorParam, decode_alert_cursor, encode_alert_cursor
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.alerts import AlertOut, AlertResolveIn, AlertStepIn
from ssbg.api.schemas.common import Envelope, ListEnvelope, ListMeta, Meta
from ssbg.domain.alerts import AlertSeverity, AlertStatus, AlertStep
from ssbg.domain.detection import RuleId
from ssbg.domain.errors import (
    AuthInvalidKey,
    ForbiddenRole,
    IncidentLockdown,
    InvalidStateTransition,
    NotFound,
)
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission
from ssbg.domain.queries import AlertFilters

router = APIRouter(prefix="/admin/alerts", tags=["admin: alerts"])
Reader = Annotated[Actor, Depends(require(Permission.ALERT_READ))]
Handler = Annotated[Actor, Depends(require(Permission.ALERT_MANAGE))]
_READ = (AuthInvalidKey, ForbiddenRole)
_STEP = (*_READ, IncidentLockdown, NotFound, InvalidStateTransition)


@router.get("", response_model=ListEnvelope[AlertOut], responses=error_responses(*_READ))
async def list_alerts(
    request: Request,
    services: ServicesDep,
    _actor: Reader,
    status: AlertStatus | None = None,
    severity: AlertSeverity | None = None,
    rule_id: RuleId | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorParam = None,
) -> ListEnvelope[AlertOut]:
    """Alerts, newest first, filtered by effective status, severity and rule. Page with
    ``cursor`` (the previous page's ``meta.next_cursor``). Still answers at level 3."""
    page = await services.alerts.list_alerts(
        AlertFilters(
            status=status.value if status else None,
            severity=severity.value if severity else None,
            rule_id=rule_id.value if rule_id else None,
        ),
        decode_alert_cursor(cursor) if cursor else None,
        limit,
    )
    return ListEnvelope(
        data=[AlertOut.of(view) for view in page.items],
        meta=ListMeta(
            request_id=request_id_of(request.scope),
            next_cursor=encode_alert_cursor(page.next_cursor) if page.next_cursor else None,
        ),
    )


@router.get(
    "/{alert_id}", response_model=Envelope[AlertOut], responses=error_responses(*_READ, NotFound)
)
async def get_alert(
    alert_id: UUID, request: Request, services: ServicesDep, _actor: Reader
) -> Envelope[AlertOut]:
    view = await services.alerts.get_alert(alert_id)
    return Envelope(data=AlertOut.of(view), meta=Meta(request_id=request_id_of(request.scope)))


_STEP_DOCS = {
    AlertStep.ACKNOWLEDGE: "``NEW`` or ``ESCALATED`` → ``ACKNOWLEDGED`` (audited ``ALERT_ACK``).",
    AlertStep.INVESTIGATE: "``ACKNOWLEDGED`` → ``INVESTIGATING`` (audited ``ALERT_INVESTIGATE``).",
    AlertStep.RESOLVE: (
        "``ACKNOWLEDGED`` or ``INVESTIGATING`` → ``RESOLVED``, with a note (audited "
        "``ALERT_RESOLVE``). A later trigger of the same rule and subject opens a new alert."
    ),
}


def _step_route(step: AlertStep) -> Callable[..., Awaitable[Envelope[AlertOut]]]:
    async def take_step(
        alert_id: UUID,
        request: Request,
        services: ServicesDep,
        actor: Handler,
        body: AlertStepIn | None = None,
    ) -> Envelope[AlertOut]:
        view = await services.alerts.take_step(actor, alert_id, step, body.note if body else None)
        return Envelope(data=AlertOut.of(view), meta=Meta(request_id=request_id_of(request.scope)))

    async def resolve(
        alert_id: UUID,
        request: Request,
        services: ServicesDep,
        actor: Handler,
        body: AlertResolveIn,
    ) -> Envelope[AlertOut]:
        view = await services.alerts.take_step(actor, alert_id, step, body.note)
        return Envelope(data=AlertOut.of(view), meta=Meta(request_id=request_id_of(request.scope)))

    route = resolve if step is AlertStep.RESOLVE else take_step
    route.__name__ = f"{step.value}_alert"
    route.__doc__ = _STEP_DOCS[step]
    return route


for _alert_step in AlertStep:
    router.add_api_route(
        f"/{{alert_id}}/{_alert_step.value}",
        _step_route(_alert_step),
        methods=["POST"],
        response_model=Envelope[AlertOut],
        responses=error_responses(*_STEP),
    )
