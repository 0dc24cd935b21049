"""The console's read-only pages: overview, backups, one backup. Each reads through the same
service as its API route (``GET /backups`` → ``services.backups.list_backups``), for a caller
checked as the API checks one (``ssbg.console.dependencies.page``)."""

import re
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from ssbg.api.dependencies import ServicesDep
from ssbg.api.pagination import CursorParam, decode_backup_cursor, encode_backup_cursor
from ssbg.console.charts import daily_bars
from ssbg.console.dependencies import PageCaller, page
from ssbg.console.rendering import ConsoleRoute, error_page, layout_of, render
from ssbg.domain.alerts import AlertSeverity
from ssbg.domain.backup_fields import SOURCE_SYSTEM_PATTERN
from ssbg.domain.enums import BackupStatus, Classification
from ssbg.domain.errors import BackupNotFound, NotFound, ValidationFailed
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.permissions import Permission
from ssbg.domain.queries import BackupFilters
from ssbg.services.console_overview import Activity

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 20
_SOURCE_SYSTEM = re.compile(SOURCE_SYSTEM_PATTERN)
E = TypeVar("E", bound=StrEnum)

Overview = Annotated[PageCaller, Depends(page(Permission.IDENTITY_READ))]
Reader = Annotated[PageCaller, Depends(page(Permission.BACKUP_READ))]

# What each incident level blocks (SPEC §13.2), as the overview says it.
INCIDENT_EFFECTS = {
    IncidentLevel.NORMAL: "Nothing is blocked.",
    IncidentLevel.ALERT: "Every restore needs a TOTP code; restore rate limits are halved.",
    IncidentLevel.QUARANTINE: "Every restore waits for a second admin's approval.",
    IncidentLevel.LOCKDOWN: (
        "Lockdown: every change is refused (423); only investigators' reads answer. Lifted "
        "only on the host."
    ),
}


@router.get("/")
async def overview_page(request: Request, services: ServicesDep, caller: Overview) -> Response:
    overview = await services.console_overview.overview(caller.actor)
    context = {
        **caller.layout("/console/"),
        "title": "Overview",
        "overview": overview,
        "incident_effect": (
            INCIDENT_EFFECTS[overview.incident_level]
            if overview.incident_level is not None
            else None
        ),
        "severities": list(AlertSeverity),
        **_chart_context(overview.activity),
    }
    return render(request, "overview.html", context)


def _chart_context(activity: Activity | None) -> dict[str, Any]:
    """The chart and its table of numbers (none when the caller may not read backups)."""
    if activity is None:
        return {"chart": None, "series": [], "rows": []}
    series = [("backups", activity.backups)]
    if activity.restores is not None:
        series.append(("restore requests", activity.restores))
    return {
        "chart": daily_bars(activity.days, series),
        "series": [noun for noun, _ in series],
        "rows": list(zip(activity.days, *(counts for _, counts in series), strict=True)),
    }


def choice(enum: type[E], name: str, value: str | None) -> E | None:
    if not value:
        return None
    try:
        return enum(value)
    except ValueError:
        raise ValidationFailed(details={name: "Not one of the listed values."}) from None


def paging_links(
    path: str, chosen: dict[str, str], cursor: str | None, next_cursor: str | None
) -> dict[str, Any]:
    """A listing's pager: its first page and next page under the ``chosen`` filters."""
    query = {name: value for name, value in chosen.items() if value}
    next_link = None
    if next_cursor is not None:
        next_link = path + "?" + urlencode({**query, "cursor": next_cursor})
    return {
        "first_link": path + ("?" + urlencode(query) if query else ""),
        "paged": cursor is not None,
        "next_link": next_link,
    }


@router.get("/backups")
async def backups_page(
    request: Request,
    services: ServicesDep,
    caller: Reader,
    status: str | None = None,
    classification: str | None = None,
    source_system: str | None = None,
    cursor: CursorParam = None,
) -> Response:
    if source_system and not _SOURCE_SYSTEM.fullmatch(source_system):
        raise ValidationFailed(details={"source_system": "Letters, digits, '.', '_' and '-'."})
    filters = BackupFilters(
        status=choice(BackupStatus, "status", status),
        classification=choice(Classification, "classification", classification),
        source_system=source_system or None,
    )
    listing = await services.backups.list_backups(
        caller.actor, filters, decode_backup_cursor(cursor) if cursor else None, PAGE_SIZE
    )
    chosen = {
        "status": filters.status.value if filters.status else "",
        "classification": filters.classification.value if filters.classification else "",
        "source_system": filters.source_system or "",
    }
    next_cursor = encode_backup_cursor(listing.next_cursor) if listing.next_cursor else None
    context = {
        **caller.layout("/console/backups"),
        "title": "Backups",
        "backups": listing.items,
        "chosen": chosen,
        "statuses": list(BackupStatus),
        "classifications": list(Classification),
        **paging_links("/console/backups", chosen, cursor, next_cursor),
    }
    return render(request, "backups.html", context)


@router.get("/backups/{backup_id}")
async def backup_page(
    request: Request, backup_id: str, services: ServicesDep, caller: Reader
) -> Response:
    try:
        parsed = UUID(backup_id)
    except ValueError:
        raise BackupNotFound() from None
    view = await services.backups.get_status(caller.actor, parsed)
    context = {
        **caller.layout("/console/backups"),
        "title": f"Backup {view.backup.id}",
        "backup": view.backup,
        "transitions": view.transitions,
    }
    return render(request, "backup.html", context)


@router.get("/{unknown:path}")
async def not_found_page(request: Request, unknown: str) -> Response:
    """Anything else under /console: a page, not the API's JSON."""
    return error_page(request, NotFound("There is no such page."), layout_of(request))
