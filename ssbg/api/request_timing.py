"""``ssbg_http_request_duration_seconds``, as pure ASGI middleware (no body buffering).

Timed from the request's arrival until the last byte of the response was handed to the
server, so a streamed download counts its whole transfer. Labelled by the *route template*
(``/api/v1/backups/{backup_id}``) of the route the router matched, never by the raw path —
which a client controls, and which would create a series per backup id or per scanner probe.
A request that matched no route is labelled ``<unmatched>``; one whose handler raised and
sent nothing is recorded as 500, the status the error handler answers with.
"""

import time
from collections.abc import Iterable

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ssbg.infrastructure.metrics import UNMATCHED_ROUTE, observe_request


class RouteTemplates:
    """The full template of every route the app serves, by route object.

    The router puts the matched route in ``scope["route"]``; but a route included through
    routers with prefixes knows only its own part of the path (``/backups/{backup_id}``; which
    FastAPI versions copy routes with the full path and which keep the original is theirs to
    change). So the app registers each router's routes with the prefix it mounts them under,
    and a route it did not register is labelled by its own path.
    """

    def __init__(self) -> None:
        # By identity (routes are not hashable); the route is kept so its id stays its own.
        self._templates: dict[int, tuple[BaseRoute, str]] = {}

    def add(self, prefix: str, routes: Iterable[BaseRoute]) -> None:
        for route in routes:
            path = _template(route)
            if isinstance(path, str):
                self._templates[id(route)] = (route, prefix + path)

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if not isinstance(route, BaseRoute):
            return UNMATCHED_ROUTE
        registered = self._templates.get(id(route))
        if registered is not None and registered[0] is route:
            return registered[1]
        path = _template(route)
        return path if isinstance(path, str) else UNMATCHED_ROUTE


def _template(route: BaseRoute) -> object:
    """The route's path without convertors (``/keys/{version}``, not ``{version:key_version}``)."""
    return getattr(route, "path_format", None) or getattr(route, "path", None)


class RequestTimingMiddleware:
    def __init__(self, app: ASGIApp, templates: RouteTemplates) -> None:
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            observe_request(
                self.templates.of(scope), scope["method"], status, time.perf_counter() - started
            )
