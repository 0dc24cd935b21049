"""The web console (SPEC §13.5): server-rendered pages under ``/console/``.

Jinja2 templates, one stylesheet and small script files (no inline script or style, no build
step, nothing from another origin). The pages call the same services with the same permission
checks and audit entries as the API (``ssbg.console.dependencies``); none of their routes is
in the OpenAPI description.
"""

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ssbg.api.request_timing import RouteTemplates
from ssbg.console import (
    api_keys,
    audit,
    keys,
    operations,
    pages,
    policies,
    restores,
    session_routes,
)
from ssbg.console.rendering import STATIC_DIR
from ssbg.console.security import CONSOLE_PATH, STATIC_PATH, ConsoleSecurityHeaders


def install_console(app: FastAPI, templates: RouteTemplates) -> None:
    app.add_middleware(ConsoleSecurityHeaders)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="console-static")
    # sign-in first: the pages' router ends with a catch-all for unknown console paths
    for module in (session_routes, operations, restores, audit, keys, api_keys, policies, pages):
        app.include_router(module.router, prefix=CONSOLE_PATH)
        templates.add(CONSOLE_PATH, module.router.routes)
