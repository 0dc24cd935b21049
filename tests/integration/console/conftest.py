from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

CONSOLE = "http://ssbg.test/console"
PEER = ("192.0.2.10", 50000)


@pytest.fixture
async def browser(
    shared_app: FastAPI, client: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping HTTP client on the console, as a browser would be (no redirects
    followed, so each test sees them), beside the API's ``client`` (which gives the shared
    app this test's services)."""
    transport = httpx.ASGITransport(app=shared_app, client=PEER, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE) as http:
        yield http


@pytest.fixture
async def second_browser(shared_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Another browser on the console (a second admin's), with cookies of its own."""
    transport = httpx.ASGITransport(app=shared_app, client=PEER, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE) as http:
        yield http
