"""Pages from Jinja2 templates (autoescaped), and how a console route answers a refusal.

A console route never answers with the API's JSON envelope: :class:`ConsoleRoute` turns the
errors its dependencies and services raise into pages with the same status (and the same side
effects the API's handler has: metrics, the tampering record — ``ssbg.api.errors``).
"""

from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from ssbg.api.errors import record_error
from ssbg.api.request_context import request_id_of
from ssbg.console.security import SESSION_COOKIE, clear_console_cookie, secure_cookies
from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.errors import AuthInvalidKey, RateLimited, SsbgError, ValidationFailed

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
SIGN_IN_PATH = "/console/sign-in"


class SignInRequired(Exception):
    """No live session: the browser goes to the sign-in page."""


class CsrfRefused(SsbgError):
    code, status, default_message = (
        "CSRF_TOKEN_INVALID",
        403,
        "This form did not come from this console session (or it expired): nothing was "
        "changed. Reload the page and try again.",
    )


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return format_timestamp(moment)[:19].replace("T", " ") + " UTC"


def _size(count: int | None) -> str:
    if count is None:
        return "—"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every value is HTML-escaped unless a template says otherwise
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["size"] = _size
    return environment


ENVIRONMENT = _environment()


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    body = ENVIRONMENT.get_template(template).render(
        request_id=request_id_of(request.scope), **context
    )
    return HTMLResponse(body, status_code=status, headers=dict(headers or {}))


def error_page(request: Request, error: SsbgError, page: Mapping[str, Any]) -> HTMLResponse:
    headers = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_seconds)
    context = {**page, "title": "Refused" if error.status < 500 else "Failed", "error": error}
    return render(request, "error.html", context, status=error.status, headers=headers)


def sign_in_redirect(*, ended: bool = False, secure: bool = False) -> RedirectResponse:
    response = RedirectResponse(SIGN_IN_PATH + ("?ended=1" if ended else ""), status_code=303)
    if ended:
        clear_console_cookie(response, SESSION_COOKIE, secure=secure)
    return response


LAYOUT_STATE = "ssbg_console_layout"


def anonymous_layout() -> dict[str, Any]:
    """The layout's context when nobody is signed in."""
    return {"caller": None, "nav": [], "csrf_token": ""}


def layout_of(request: Request) -> dict[str, Any]:
    """The layout of the signed-in caller, once its session was resumed (else anonymous)."""
    layout = getattr(request.state, LAYOUT_STATE, None)
    return dict(layout) if isinstance(layout, dict) else anonymous_layout()


class ConsoleRoute(APIRoute):
    """An APIRoute whose refusals are pages: no session → the sign-in page; a key that may
    no longer be used → the sign-in page, saying the session ended; any other ``SsbgError``
    (and invalid input) → an error page with the contract's status and message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return sign_in_redirect()
            except RequestValidationError:
                return error_page(request, ValidationFailed(), layout_of(request))
            except SsbgError as error:
                await record_error(request, error)
                if isinstance(error, AuthInvalidKey):
                    return sign_in_redirect(ended=True, secure=secure_cookies(request))
                return error_page(request, error, layout_of(request))

        return handle
