"""``GET /metrics`` (SPEC §13.2): Prometheus text format, outside ``/api/v1``, no API key.

Answers only clients whose address is in ``SSBG_METRICS_ALLOW``; every other client gets the
404 ``NOT_FOUND`` an unknown path gets, byte for byte the same envelope. A 403 would confirm
to a scanner that the endpoint exists and that an allow-list guards it; operators debugging a
refused scrape find the refusal in the gateway's log instead. Which address is judged, and
why forwarded requests need trusted proxies, is explained in
:func:`ssbg.domain.network.scrape_allowed`.
"""

from functools import lru_cache

import structlog
from fastapi import APIRouter, Request, Response

from ssbg.api.dependencies import ServicesDep
from ssbg.domain.errors import NotFound
from ssbg.domain.network import IPNetwork, parse_networks, scrape_allowed
from ssbg.infrastructure.metrics import CONTENT_TYPE

router = APIRouter(tags=["monitoring"])

log = structlog.get_logger("ssbg.metrics")

_OTHER_FORWARDING_HEADERS = ("forwarded", "x-real-ip")


@lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> list[IPNetwork]:
    return parse_networks(entries)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus metrics, for allowed client addresses only (see the module doc)."""
    settings = services.settings
    peer = request.client.host if request.client else None
    if not scrape_allowed(
        peer,
        request.headers.get("x-forwarded-for"),
        any(name in request.headers for name in _OTHER_FORWARDING_HEADERS),
        _networks(tuple(settings.trusted_proxies)),
        _networks(tuple(settings.metrics_allow)),
    ):
        log.info("metrics_scrape_refused", peer=peer)
        raise NotFound()
    return Response(await services.metrics.scrape(), media_type=CONTENT_TYPE)
