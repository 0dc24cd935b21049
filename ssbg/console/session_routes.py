"""Sign-in and sign-out (SPEC §13.5).

The sign-in form's ``csrf_token`` is bound to a random ``ssbg_sign_in`` cookie (double submit,
the token derived from the cookie under the integrity key), so another site can neither post
the form nor sign a browser in with a key of its own. The key is checked by the auth service:
a failure is an ``AUTH_FAILURE`` counted against the address, throttled (429) like the API's.
"""

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from ssbg.api.dependencies import ContextDep, ServicesDep
from ssbg.api.errors import record_error
from ssbg.console.dependencies import FormCallerDep
from ssbg.console.rendering import (
    SIGN_IN_PATH,
    ConsoleRoute,
    CsrfRefused,
    anonymous_layout,
    error_page,
    render,
)
from ssbg.console.security import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_COOKIE_SECONDS,
    clear_console_cookie,
    secure_cookies,
    set_console_cookie,
)
from ssbg.domain.console_sessions import is_session_secret, new_session_secret
from ssbg.domain.errors import AuthInvalidKey, AuthThrottled
from ssbg.services.container import Services

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

OVERVIEW_PATH = "/console/"
KEY_REFUSED = "That API key was not accepted."
THROTTLED = "Too many failed sign-ins from this address. Try again later."
SESSION_ENDED = "Your session has ended. Sign in again."


def _sign_in_form(
    request: Request,
    services: Services,
    *,
    message: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The form, with a ``csrf_token`` bound to this browser's sign-in cookie (a new one
    unless the browser has one already)."""
    secret = request.cookies.get(SIGN_IN_COOKIE)
    if not is_session_secret(secret):
        secret = new_session_secret()
    assert secret is not None
    context = {
        **anonymous_layout(),
        "title": "Sign in",
        "message": message,
        "sign_in_token": services.console_sessions.sign_in_token(secret),
    }
    response = render(request, "sign_in.html", context, status=status, headers=headers)
    set_console_cookie(
        response,
        SIGN_IN_COOKIE,
        secret,
        secure=secure_cookies(request),
        max_age=SIGN_IN_COOKIE_SECONDS,
    )
    return response


@router.get("/sign-in")
async def sign_in_page(
    request: Request, services: ServicesDep, context: ContextDep, ended: int = 0
) -> Response:
    session = await services.console_sessions.resume(request.cookies.get(SESSION_COOKIE), context)
    if session is not None:
        return RedirectResponse(OVERVIEW_PATH, status_code=303)
    return _sign_in_form(request, services, message=SESSION_ENDED if ended else None)


@router.post("/sign-in")
async def sign_in(
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    api_key: Annotated[str | None, Form(max_length=256)] = None,
    csrf_token: Annotated[str | None, Form(max_length=256)] = None,
) -> Response:
    """Begin a session with an API key (form field ``api_key``)."""
    sessions = services.console_sessions
    if not sessions.sign_in_token_matches(request.cookies.get(SIGN_IN_COOKIE), csrf_token):
        return error_page(request, CsrfRefused(), anonymous_layout())
    try:
        created = await sessions.sign_in(api_key, context)
    except AuthThrottled as error:
        await record_error(request, error)
        retry = {"Retry-After": str(error.retry_after_seconds)}
        return _sign_in_form(request, services, message=THROTTLED, status=429, headers=retry)
    except AuthInvalidKey as error:
        await record_error(request, error)
        return _sign_in_form(request, services, message=KEY_REFUSED, status=401)
    response = RedirectResponse(OVERVIEW_PATH, status_code=303)
    secure = secure_cookies(request)
    set_console_cookie(response, SESSION_COOKIE, created.secret, secure=secure)
    clear_console_cookie(response, SIGN_IN_COOKIE, secure=secure)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, services: ServicesDep, caller: FormCallerDep) -> Response:
    await services.console_sessions.sign_out(caller.session, caller.context)
    response = RedirectResponse(SIGN_IN_PATH, status_code=303)
    clear_console_cookie(response, SESSION_COOKIE, secure=secure_cookies(request))
    return response
