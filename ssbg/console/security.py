"""The web console's HTTP hardening (SPEC §13.5): response headers and cookies.

Every response under ``/console`` carries a strict Content-Security-Policy (scripts and styles
from our own files only: no inline script or style, no other origin, no framing, forms post
only to us), ``X-Frame-Options: DENY``, ``nosniff`` and ``Referrer-Policy: no-referrer``.
Pages are never cached (they hold data); only the static files under ``/console/static`` may
be, after revalidation.

Cookies are ``HttpOnly``, ``SameSite=Strict`` and scoped to ``/console``; ``Secure`` when the
client reached us over TLS — directly, or through a proxy in ``SSBG_TRUSTED_PROXIES`` that says
so in ``X-Forwarded-Proto``.
"""

from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ssbg.api.dependencies import trusted_networks
from ssbg.domain.network import served_over_https

CONSOLE_PATH = "/console"
STATIC_PATH = f"{CONSOLE_PATH}/static"
SESSION_COOKIE = "ssbg_session"
SIGN_IN_COOKIE = "ssbg_sign_in"
SIGN_IN_COOKIE_SECONDS = 3600

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
_COMMON_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_PAGE_CACHE = (b"cache-control", b"no-store")
_STATIC_CACHE = (b"cache-control", b"no-cache")
_REPLACED = {name for name, _ in _COMMON_HEADERS} | {b"cache-control"}


def _is_console(path: str) -> bool:
    return path == CONSOLE_PATH or path.startswith(CONSOLE_PATH + "/")


class ConsoleSecurityHeaders:
    """Pure ASGI middleware: the headers above on every ``/console`` response, whatever
    produced it (a page, a redirect, an error, a static file)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_console(scope["path"]):
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(STATIC_PATH + "/")
        added = [*_COMMON_HEADERS, _STATIC_CACHE if static else _PAGE_CACHE]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k not in _REPLACED]
                message["headers"] = kept + added
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_https(request: Request, trusted_proxies: list[str]) -> bool:
    peer = request.client.host if request.client else None
    return served_over_https(
        request.url.scheme,
        peer,
        request.headers.get("x-forwarded-proto"),
        trusted_networks(tuple(trusted_proxies)),
    )


def secure_cookies(request: Request) -> bool:
    """Whether this request's cookies get ``Secure`` (the gateway's trusted proxies)."""
    return is_https(request, request.app.state.services.settings.trusted_proxies)


def set_console_cookie(
    response: Response, name: str, value: str, *, secure: bool, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=CONSOLE_PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def clear_console_cookie(response: Response, name: str, *, secure: bool) -> None:
    response.delete_cookie(name, path=CONSOLE_PATH, secure=secure, httponly=True, samesite="strict")
