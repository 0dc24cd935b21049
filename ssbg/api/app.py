"""The ASGI application: ``create_app()`` is what ``ssbg serve`` and the tests run."""

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from ssbg import __version__
from ssbg.api.contract import install_contract
from ssbg.api.errors import install_error_handlers
from ssbg.api.paths import API_PREFIX
from ssbg.api.request_context import RequestContextMiddleware
from ssbg.api.request_timing import RequestTimingMiddleware, RouteTemplates
from ssbg.api.routes import (
    admin_alerts,
    admin_api_keys,
    admin_incident,
    admin_keys,
    admin_policies,
    admin_retention,
    audit,
    backup_holds,
    backup_verification,
    backups,
    health,
    identity,
    metrics,
    restores,
)
from ssbg.console import install_console
from ssbg.infrastructure import metrics as process_metrics
from ssbg.infrastructure.log_config import configure_logging
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings

ESCALATION_SWEEP_SECONDS = 30


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app. With ``services`` given (tests), the caller owns their lifetime."""
    settings = settings or (services.settings if services else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        active = services or build_services(settings)
        app.state.services = active
        background: list[asyncio.Task[None]] = []
        try:
            if owned:
                await active.start_up.run(replica=f"{socket.gethostname()}:{os.getpid()}")
                # Fail backups left PROCESSING by a dead process: once per lease from now on.
                background.append(
                    asyncio.create_task(
                        active.backup_recovery.run_periodically(settings.backup_lease_seconds)
                    )
                )
                # Record the escalation of alerts left unacknowledged (SPEC §13.2).
                background.append(
                    asyncio.create_task(active.alerts.run_periodically(ESCALATION_SWEEP_SECONDS))
                )
                # Run verify jobs started here, and resume those of dead replicas (SPEC §13.4).
                background.append(
                    asyncio.create_task(
                        active.verification.jobs.run_periodically(settings.backup_lease_seconds)
                    )
                )
                # Deliver the webhook outbox (SPEC §13.2), shared with every other replica.
                if active.webhooks is not None:
                    background.append(asyncio.create_task(active.webhooks.run()))
            yield
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if owned:
                await active.close()
                process_metrics.mark_this_process_dead()

    app = FastAPI(
        title="SSBG — Secure Sovereign Backup Gateway",
        version=__version__,
        lifespan=lifespan,
        description=(
            "Encrypts backups before storage, keeps durable lifecycle metadata, and records "
            "every security-relevant action in a signed, hash-chained audit log."
        ),
    )
    if services is not None:
        app.state.services = services
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    templates = RouteTemplates()
    # Outermost: the timing includes the request-id and access-log work of every request.
    app.add_middleware(RequestTimingMiddleware, templates=templates)

    api = APIRouter(prefix=API_PREFIX)
    for module in (
        health,
        identity,
        admin_api_keys,
        admin_policies,
        admin_incident,
        admin_alerts,
        admin_keys,
        admin_retention,
        audit,
        backups,
        backup_verification,
        backup_holds,
        restores,
    ):
        api.include_router(module.router)
        templates.add(API_PREFIX, module.router.routes)
    app.include_router(api)
    # Outside API_PREFIX: scrapers expect /metrics, and it is not part of the JSON API.
    app.include_router(metrics.router)
    templates.add("", metrics.router.routes)
    install_console(app, templates)
    install_contract(app)
    return app


def create_served_app() -> FastAPI:
    """Entry point for uvicorn workers: settings and logging from the environment."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
