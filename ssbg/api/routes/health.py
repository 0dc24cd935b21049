from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from ssbg import __version__
from ssbg.api.dependencies import ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.common import Envelope, Meta
from ssbg.domain.errors import (
    AuthInvalidKey,
    DatabaseUnavailable,
    ForbiddenRole,
    KeyUnavailable,
    StorageUnavailable,
)
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission

router = APIRouter(prefix="/health", tags=["health"])


@router.get("")
async def health() -> dict[str, str]:
    """Liveness: 200 while the process runs. No authentication, no dependencies touched."""
    return {"status": "ok", "version": __version__}


@router.get(
    "/ready",
    responses=error_responses(DatabaseUnavailable, StorageUnavailable, KeyUnavailable),
)
async def ready(services: ServicesDep) -> dict[str, Any]:
    """Readiness: 200 only when the database and the object store take a (probe) write and the
    key store is readable.

    Otherwise 503 with the first failed check as the error code and every check's outcome in
    ``details``.
    """
    readiness = await services.health.readiness()
    if not readiness.ready:
        raise readiness.failure()
    return {"status": "ready", "checks": {c.name: "ok" for c in readiness.checks}}


@router.get(
    "/detailed",
    response_model=Envelope[dict[str, Any]],
    responses=error_responses(AuthInvalidKey, ForbiddenRole, DatabaseUnavailable),
)
async def detailed(
    request: Request,
    services: ServicesDep,
    _actor: Annotated[Actor, Depends(require(Permission.HEALTH_DETAILED))],
) -> Envelope[dict[str, Any]]:
    """Every check with its latency, the incident level, the active key version, the audit head."""
    details = await services.health.details()
    return Envelope(data=details, meta=Meta(request_id=request_id_of(request.scope)))
