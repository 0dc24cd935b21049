"""One place that renders every failure in the contract's envelope (SPEC §3, §4).

Covers our own errors, FastAPI's request validation, Starlette's 404/405 and anything
unexpected (500 ``INTERNAL_ERROR`` with no traceback or library text).
"""

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ssbg.api.dependencies import get_request_context, get_services
from ssbg.api.request_context import REQUEST_ID_HEADER, request_id_of
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthThrottled,
    InternalError,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    SsbgError,
    TamperedRow,
    ValidationFailed,
)
from ssbg.infrastructure.metrics import record_auth_failure

log = structlog.get_logger("ssbg.api")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]
    request_id: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_response(request: Request, error: SsbgError) -> JSONResponse:
    request_id = request_id_of(request.scope)
    headers = {REQUEST_ID_HEADER: request_id}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(error.allowed_methods))
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "details": error.details,
            "request_id": request_id,
        }
    }
    return JSONResponse(body, status_code=error.status, headers=headers)


def _field_name(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for error in exc.errors():
        # Only the message, never the rejected input: it might be a secret or a huge string.
        details.setdefault(_field_name(tuple(error.get("loc", ()))), error.get("msg", "invalid"))
    return details


async def record_error(request: Request, exc: SsbgError) -> None:
    """What every refusal leaves behind besides its response, whoever renders it (the API's
    envelope here, the web console's pages in ``ssbg.console``)."""
    if isinstance(exc, AuthInvalidKey | AuthThrottled):
        # Counted here, where every refusal of authentication becomes a response, whichever
        # dependency or service raised it.
        record_auth_failure()
    if isinstance(exc, TamperedRow):
        services = await get_services(request)
        context = await get_request_context(request, services)
        await services.integrity.record_tampering(exc, context)
    if exc.status >= 500:
        log.warning("request_failed", code=exc.code, status=exc.status, error=type(exc).__name__)


async def _on_ssbg_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SsbgError)
    await record_error(request, exc)
    return error_response(request, exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(request, ValidationFailed(details=_validation_details(exc)))


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> frozenset[str]:
    """Every method some route serves at this path (RFC 9110 §15.5.6: a 405 carries ``Allow``).

    Starlette's own ``Allow`` names only the first route that matched the path, and FastAPI
    makes a route per method (``GET /backups`` and ``POST /backups`` are two), nested in the
    routers that include them: so each method is tried against the app's routes as a request
    of that method, through the public ``matches`` every route has.
    """
    routes = request.app.router.routes
    return frozenset(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(request, NotFound())
    if exc.status_code == 405:
        return error_response(request, MethodNotAllowed(allowed_methods=_allowed_methods(request)))
    if exc.status_code in (400, 422):
        return error_response(request, ValidationFailed())
    if exc.status_code == 413:
        from ssbg.domain.errors import PayloadTooLarge

        return error_response(request, PayloadTooLarge())
    return error_response(request, InternalError())


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_exception", error=type(exc).__name__, exc_info=exc)
    return error_response(request, InternalError())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SsbgError, _on_ssbg_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


def error_responses(*errors: type[SsbgError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the contract's error model under each status its use case
    can return. What its dependencies add (401, 403, 422, 423, 429, 503, 500) is declared for
    every route by ``ssbg.api.contract``."""
    by_status: dict[int, list[str]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error.code)
    return {
        status: {"model": ErrorResponse, "description": " / ".join(sorted(set(codes)))}
        for status, codes in sorted(by_status.items())
    }
