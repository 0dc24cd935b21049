"""The web console in a real browser (SPEC §13.5): sign-in, the overview, paging through
backups, CSRF refusal, idle expiry, sign-out, the CSP, and a phone-sized screen.

Screenshots of each page go to docs/console/ (1280x800) for the README.
"""

import re

import httpx
from playwright.sync_api import expect

from ssbg.services.container import Services
from tests.browser.conftest import AUTH_FAILURE_LIMIT, Console
from tests.support.audit import audit_entries
from tests.support.threaded_gateway import ThreadedGateway

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
PAGE_SIZE = 20


def _bootstrap_key(gateway: ThreadedGateway) -> str:
    assert gateway.bootstrap_key is not None
    return gateway.bootstrap_key.api_key


def _store_backups(gateway: ThreadedGateway, count: int, source_system: str = "db-1") -> list[str]:
    """``count`` backups through the JSON API, a second apart; their ids, oldest first."""
    ids = []
    with httpx.Client(base_url=f"{gateway.url}/api/v1") as api:
        for number in range(count):
            gateway.clock.advance(seconds=1)
            answer = api.post(
                "/backups",
                headers={"X-API-Key": _bootstrap_key(gateway)},
                data={"classification": "INTERNAL", "source_system": source_system},
                files={"file": (f"dump-{number}.sql", f"payload {number}".encode())},
            )
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["data"]["backup_id"])
    return ids


def _audit_actions(gateway: ThreadedGateway) -> list[str]:
    async def read(services: Services) -> list[str]:
        return [entry.action for entry in await audit_entries(services.db)]

    return gateway.call(read)


def test_sign_in_with_a_valid_key_shows_the_overview(console: Console) -> None:
    page = console.page
    page.goto(console.url("/"))
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    console.screenshot("sign-in")

    console.sign_in(_bootstrap_key(console.gateway))

    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.get_by_role("navigation", name="Console")).to_contain_text("Backups")
    expect(page.get_by_text("bootstrap super_admin")).to_be_visible()
    expect(page.locator("figure.chart svg")).to_be_visible()
    assert "CONSOLE_SIGN_IN" in _audit_actions(console.gateway)


def test_a_wrong_key_is_refused_and_throttled_like_the_api(console: Console) -> None:
    page = console.page
    for _ in range(AUTH_FAILURE_LIMIT + 1):  # more than the limit (SPEC §13.2)
        console.sign_in("ssbg_" + "0" * 32)
        expect(page.get_by_role("alert")).to_have_text("That API key was not accepted.")

    console.sign_in("ssbg_" + "0" * 32)
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")

    console.sign_in(_bootstrap_key(console.gateway))  # a valid key from there still works
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


def test_paging_through_backups_and_opening_one(console: Console) -> None:
    created = _store_backups(console.gateway, PAGE_SIZE + 3, "paged-db")
    page = console.page
    console.sign_in(_bootstrap_key(console.gateway))
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    console.screenshot("overview")  # with the backups in its chart

    page.get_by_role("link", name="Backups").click()
    expect(page.get_by_role("heading", name="Backups", level=1)).to_be_visible()
    page.get_by_label("Source system").fill("paged-db")  # other tests' backups left out
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"source_system=paged-db"))
    first = page.locator("table.backups tbody tr")
    expect(first).to_have_count(PAGE_SIZE)
    newest = page.locator("table.backups tbody tr a.id").first.get_attribute("href")
    console.screenshot("backups")
    page.get_by_role("link", name="Next page").click()
    rest = page.locator("table.backups tbody tr a.id")
    expect(rest).to_have_count(len(created) - PAGE_SIZE)
    oldest = rest.last.get_attribute("href")
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)

    rest.last.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(created[0])
    expect(page.get_by_role("list").filter(has_text="PROCESSING")).to_contain_text("ACTIVE")
    console.screenshot("backup")
    assert newest == f"/console/backups/{created[-1]}"
    assert oldest == f"/console/backups/{created[0]}"


def test_a_post_with_a_wrong_csrf_token_is_refused_and_changes_nothing(console: Console) -> None:
    console.sign_in(_bootstrap_key(console.gateway))
    expect(console.page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    before = _audit_actions(console.gateway).count("CONSOLE_SIGN_OUT")

    refused = console.page.request.post(
        console.url("/sign-out"), form={"csrf_token": "0" * 64}, max_redirects=0
    )

    assert refused.status == 403
    assert "CSRF_TOKEN_INVALID" in refused.text()
    console.page.reload()
    expect(console.page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    assert _audit_actions(console.gateway).count("CONSOLE_SIGN_OUT") == before


def test_an_idle_session_expires(console: Console) -> None:
    console.sign_in(_bootstrap_key(console.gateway))
    expect(console.page.get_by_role("heading", name="Overview", level=1)).to_be_visible()

    console.gateway.clock.advance(minutes=15, seconds=1)  # SSBG_CONSOLE_IDLE_MINUTES=15
    console.page.reload()

    expect(console.page).to_have_url(re.compile(r"/console/sign-in$"))
    expect(console.page.get_by_label("API key")).to_be_visible()


def test_sign_out_ends_the_session(console: Console) -> None:
    console.sign_in(_bootstrap_key(console.gateway))
    expect(console.page.get_by_role("heading", name="Overview", level=1)).to_be_visible()

    console.page.get_by_role("button", name="Sign out").click()
    expect(console.page).to_have_url(re.compile(r"/console/sign-in$"))
    console.page.goto(console.url("/backups"))

    expect(console.page).to_have_url(re.compile(r"/console/sign-in$"))
    assert "CONSOLE_SIGN_OUT" in _audit_actions(console.gateway)


def _a_backup(gateway: ThreadedGateway) -> str:
    """The id of some backup (one is stored if there is none yet)."""
    with httpx.Client(base_url=f"{gateway.url}/api/v1") as api:
        listed = api.get("/backups", headers={"X-API-Key": _bootstrap_key(gateway)}).json()
    return str(listed["data"][0]["backup_id"]) if listed["data"] else _store_backups(gateway, 1)[0]


def _csp_of(console: Console, path: str) -> str:
    response = console.page.goto(console.url(path))
    assert response is not None
    return response.headers["content-security-policy"]


def test_every_page_has_the_strict_csp_and_breaks_no_rule_of_it(console: Console) -> None:
    backup_id = _a_backup(console.gateway)
    policies = [_csp_of(console, "/sign-in")]
    console.sign_in(_bootstrap_key(console.gateway))
    for path in ("/", "/backups", f"/backups/{backup_id}"):
        policies.append(_csp_of(console, path))

    assert policies == [CSP] * 4
    # and the console fixture fails the test if the browser logged an error: a CSP violation
    # (an inline script or style, a resource from elsewhere) is one


def test_a_phone_sized_screen_needs_no_horizontal_scrolling(phone: Console) -> None:
    backup_id = _a_backup(phone.gateway)
    phone.page.goto(phone.url("/sign-in"))
    overflow = {"/sign-in": phone.horizontal_overflow()}
    phone.sign_in(_bootstrap_key(phone.gateway))
    for path in ("/", "/backups", f"/backups/{backup_id}"):
        phone.page.goto(phone.url(path))
        overflow[path] = phone.horizontal_overflow()

    assert set(overflow.values()) == {0}, overflow


def test_the_keyboard_alone_signs_in_and_reaches_every_page_of_the_nav(console: Console) -> None:
    page = console.page
    page.goto(console.url("/sign-in"))
    expect(page.get_by_label("API key")).to_be_focused()  # autofocus: type at once
    page.keyboard.type(_bootstrap_key(console.gateway))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()

    page.keyboard.press("Tab")  # first stop: the skip link, then the brand, then the nav
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("a.brand")).to_be_focused()
    nav = page.get_by_role("navigation", name="Console").get_by_role("link")
    for index in range(nav.count()):
        page.keyboard.press("Tab")
        expect(nav.nth(index)).to_be_focused()
    names = [nav.nth(index).inner_text() for index in range(nav.count())]
    assert "Backups" in names

    page.goto(console.url("/"))
    for _ in range(2 + names.index("Backups") + 1):
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Backups", level=1)).to_be_visible()
