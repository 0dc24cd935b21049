"""A real browser on the web console: Playwright's synchronous API driving Debian's chromium.

* ``chromium_path`` (session): Debian's ``chromium``, installed with ``apt-get install -y
  chromium`` when missing and we are root (CI is); otherwise the tests are skipped, saying why.
  Playwright's own browser download is never used.
* ``chromium`` (module): one headless browser per test module on a worker (see the fixture).
* ``gateway`` (module): one gateway per test module, on a thread of its own (the browser's
  API blocks the test's thread); ``SSBG_TRUSTED_PROXIES`` is loopback, so each test's browser
  speaks from an address of its own (``X-Forwarded-For``) and one test's failed sign-ins are
  not another's.
* ``console`` (function): a fresh browser context (no cookies) at 1280x800, whose page fails
  the test if the browser reports any console error — a Content-Security-Policy violation is
  one.
"""

import itertools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ssbg.infrastructure.crypto.key_store import FileKeyStore
from tests.conftest import gateway_settings
from tests.support.clock import FixedClock
from tests.support.databases import SqliteTemplate
from tests.support.debian_packages import debian_command
from tests.support.threaded_gateway import ThreadedGateway

playwright_sync = pytest.importorskip("playwright.sync_api")

# Every page is photographed on every run (a page that cannot render fails its test); the
# pictures replace docs/console/ only from `make console-screenshots`, so a test run leaves the
# working tree as it found it.
SCREENSHOTS = Path(
    os.environ.get("SSBG_CONSOLE_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / f"ssbg-console-screenshots-{os.getpid()}"
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
AUTH_FAILURE_LIMIT = 3
# Generous: `make test` runs two workers on a small machine; nothing waits this long when well.
TIMEOUT_MS = 15_000
playwright_sync.expect.set_options(timeout=TIMEOUT_MS)
EXPECTED_REFUSAL = "Failed to load resource: the server responded with a status of"
_addresses = itertools.count(1)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    return debian_command("chromium")


# Module scope, not session: while Playwright's synchronous API is open, its event loop counts
# as running in this thread, and the asyncio tests that a worker runs next could not start
# theirs. Closed at the end of each module (xdist moves a worker to another module only after
# that), the loop is gone before any other test runs.
@pytest.fixture(scope="module")
def chromium(chromium_path: Path) -> Iterator["playwright_sync.Browser"]:
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: SqliteTemplate,
    shared_key_store: FileKeyStore,
) -> Iterator[ThreadedGateway]:
    directory = tmp_path_factory.mktemp("console-gateway")
    settings = gateway_settings(
        sqlite_template.fresh(directory),
        directory,
        shared_key_store,
        trusted_proxies=["127.0.0.1/32"],
        auth_failure_limit=AUTH_FAILURE_LIMIT,
    )
    with ThreadedGateway(settings, shared_key_store, FixedClock()) as running:
        yield running


@dataclass
class Console:
    """One browser context on the console and its page; ``errors``: what the browser logged."""

    gateway: ThreadedGateway
    page: "playwright_sync.Page"
    source_ip: str
    errors: list[str] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return f"{self.gateway.url}/console{path}"

    def sign_in(self, api_key: str) -> None:
        self.page.goto(self.url("/"))
        self.page.get_by_label("API key").fill(api_key)
        self.page.get_by_role("button", name="Sign in").click()

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    def horizontal_overflow(self) -> int:
        """How many CSS pixels the document is wider than the viewport (0: no scrolling)."""
        return int(
            self.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
        )


def open_console(
    chromium: "playwright_sync.Browser", gateway: ThreadedGateway, viewport: dict[str, int]
) -> Iterator[Console]:
    source_ip = f"198.51.100.{next(_addresses) % 250 + 1}"
    context = chromium.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        extra_http_headers={"X-Forwarded-For": source_ip},
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console = Console(gateway, page, source_ip)

    def on_console(message: "playwright_sync.ConsoleMessage") -> None:
        # a refusal (401, 403, 429…) is logged as a failed load: expected, not a page error
        if message.type == "error" and not message.text.startswith(EXPECTED_REFUSAL):
            console.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: console.errors.append(str(error)))
    try:
        yield console
    finally:
        context.close()
    assert console.errors == [], "the browser reported errors (a CSP violation is one)"


@pytest.fixture
def console(chromium: "playwright_sync.Browser", gateway: ThreadedGateway) -> Iterator[Console]:
    yield from open_console(chromium, gateway, DESKTOP)


@pytest.fixture
def phone(chromium: "playwright_sync.Browser", gateway: ThreadedGateway) -> Iterator[Console]:
    yield from open_console(chromium, gateway, PHONE)
