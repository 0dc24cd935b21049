"""Driving the web console over plain HTTP (a cookie-keeping httpx client), as a browser."""

import re

import httpx
import pyotp

from ssbg.services.api_key_service import IssuedApiKey
from tests.support.clock import FixedClock

_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def assert_csp_clean(html: str) -> None:
    """No inline script, inline style or event handler attribute; a ``csrf_token`` in every
    ``POST`` form."""
    assert not _INLINE_SCRIPT.search(html)
    assert " style=" not in html
    assert "<style" not in html
    assert not re.search(r"<[^>]+\son[a-z]+=", html)  # no event handler attributes
    for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, re.DOTALL):
        assert 'name="csrf_token"' in form


def csrf_token_of(html: str) -> str:
    """The ``csrf_token`` of the first form on a page."""
    found = _CSRF.search(html)
    assert found is not None, "no csrf_token on the page"
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, api_key: str) -> httpx.Response:
    """Open the sign-in form and post it with ``api_key``; the answer to the post."""
    form = await http.get("/sign-in")
    token = csrf_token_of(form.text)
    return await http.post("/sign-in", data={"api_key": api_key, "csrf_token": token})


async def signed_in(http: httpx.AsyncClient, api_key: str) -> str:
    """Sign in (it must succeed); the session's CSRF token, from the overview."""
    answer = await sign_in(http, api_key)
    assert answer.status_code == 303, answer.text
    overview = await http.get("/")
    assert overview.status_code == 200
    return csrf_token_of(overview.text)


def fresh_totp(key: IssuedApiKey, clock: FixedClock) -> str:
    """A TOTP code for ``key`` of a step not used yet (each step is accepted once)."""
    assert key.totp_secret is not None
    return pyotp.TOTP(key.totp_secret).at(clock.advance(seconds=30))
