"""The console's pages over HTTP: headers, what each role sees, the backups list and a
backup, and that none of it is in the OpenAPI description."""

import re

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.domain.incident import IncidentLevel
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.backups import upload
from tests.support.clock import FixedClock
from tests.support.console import assert_csp_clean, signed_in
from tests.support.factories import actor, create_api_key

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


@pytest.fixture
async def api(client: httpx.AsyncClient, clock: FixedClock) -> "Api":
    return Api(client, clock)


class Api:
    """The JSON API beside the console, storing backups a second apart (listed newest first)."""

    def __init__(self, client: httpx.AsyncClient, clock: FixedClock) -> None:
        self.client = client
        self.clock = clock

    async def backups(self, key: IssuedApiKey, count: int, **fields: str) -> list[str]:
        ids = []
        for number in range(count):
            self.clock.advance(seconds=1)
            payload = f"payload {number}".encode()
            answer = await upload(self.client, key, payload, **fields)  # type: ignore[arg-type]
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["data"]["backup_id"])
        return ids


def _listed_ids(html: str) -> list[str]:
    return re.findall(r'href="/console/backups/([0-9a-f-]{36})"', html)


async def test_every_console_response_carries_the_security_headers(
    browser: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    await signed_in(browser, bootstrap_key.api_key)
    answers = {
        path: await browser.get(path)
        for path in ("/", "/backups", "/sign-in", "/no-such-page", "/static/console.css")
    }

    for path, answer in answers.items():
        assert answer.headers["content-security-policy"] == CSP, path
        assert answer.headers["x-frame-options"] == "DENY", path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["referrer-policy"] == "no-referrer", path
    assert {answers[p].headers["cache-control"] for p in ("/", "/backups", "/sign-in")} == {
        "no-store"
    }
    assert answers["/no-such-page"].status_code == 404
    assert answers["/no-such-page"].headers["content-type"].startswith("text/html")
    assert answers["/static/console.css"].headers["cache-control"] == "no-cache"


async def test_pages_have_no_inline_script_and_every_post_form_a_csrf_token(
    browser: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    sign_in_page = (await browser.get("/sign-in")).text
    await signed_in(browser, bootstrap_key.api_key)
    pages = [sign_in_page] + [(await browser.get(p)).text for p in ("/", "/backups")]

    for html in pages:
        assert_csp_clean(html)


async def test_the_console_is_not_in_the_openapi_description(client: httpx.AsyncClient) -> None:
    description = (await client.get("http://ssbg.test/openapi.json")).json()

    assert not [path for path in description["paths"] if path.startswith("/console")]


async def test_pages_need_a_session(browser: httpx.AsyncClient) -> None:
    for path in ("/", "/backups", "/backups/00000000-0000-0000-0000-000000000000"):
        answer = await browser.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/sign-in"


async def test_the_backups_list_pages_through_the_same_listing_as_the_api(
    browser: httpx.AsyncClient, api: Api, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    created = await api.backups(operator, 23)
    await signed_in(browser, operator.api_key)

    first = await browser.get("/backups")
    next_link = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert next_link is not None
    second = await browser.get("http://ssbg.test" + next_link.group(1).replace("&amp;", "&"))

    assert first.status_code == second.status_code == 200
    assert _listed_ids(first.text) + _listed_ids(second.text) == created[::-1]
    assert len(_listed_ids(first.text)) == 20
    assert 'rel="next"' not in second.text


async def test_backup_filters_narrow_the_list_and_bad_values_are_a_422_page(
    browser: httpx.AsyncClient, api: Api, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    public = await api.backups(operator, 2, classification="PUBLIC", source_system="web-1")
    await api.backups(operator, 1, classification="SECRET", source_system="db-1")
    await signed_in(browser, operator.api_key)

    by_class = await browser.get("/backups", params={"classification": "PUBLIC"})
    by_source = await browser.get("/backups", params={"source_system": "web-1", "status": ""})
    bad = await browser.get("/backups", params={"status": "GONE"})

    assert _listed_ids(by_class.text) == public[::-1]
    assert _listed_ids(by_source.text) == public[::-1]
    assert bad.status_code == 422
    assert "VALIDATION_ERROR" in bad.text


async def test_an_operator_sees_only_its_own_backups(
    browser: httpx.AsyncClient, api: Api, services: Services
) -> None:
    mine_key = await create_api_key(services, Role.OPERATOR)
    other_key = await create_api_key(services, Role.OPERATOR)
    mine = await api.backups(mine_key, 1)
    theirs = await api.backups(other_key, 1)
    await signed_in(browser, mine_key.api_key)

    listing = await browser.get("/backups")
    own = await browser.get(f"/backups/{mine[0]}")
    other = await browser.get(f"/backups/{theirs[0]}")

    assert _listed_ids(listing.text) == mine
    assert own.status_code == 200
    assert other.status_code == 404
    assert "BACKUP_NOT_FOUND" in other.text


async def test_a_backup_page_shows_its_record_and_lifecycle(
    browser: httpx.AsyncClient, api: Api, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    [backup_id] = await api.backups(operator, 1, source_system="db-prod-7")
    await signed_in(browser, operator.api_key)

    page = await browser.get(f"/backups/{backup_id}")

    assert page.status_code == 200
    assert backup_id in page.text
    assert "db-prod-7" in page.text
    assert "PROCESSING</strong>" in page.text
    assert "ACTIVE</strong>" in page.text
    assert "Not verified since it was stored." in page.text


async def test_the_navigation_and_overview_show_only_what_the_role_may_read(
    browser: httpx.AsyncClient, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    await signed_in(browser, operator.api_key)

    overview = (await browser.get("/")).text

    assert 'href="/console/backups"' in overview
    for hidden in ("Incident level", "Open alerts", "Audit log", "Key versions", "restore"):
        assert hidden not in overview


async def test_the_overview_of_a_super_admin_shows_every_part(
    browser: httpx.AsyncClient,
    api: Api,
    services: Services,
    bootstrap_key: IssuedApiKey,
) -> None:
    await api.backups(bootstrap_key, 3, classification="CONFIDENTIAL")
    await signed_in(browser, bootstrap_key.api_key)

    overview = (await browser.get("/")).text

    for shown in ("Incident level", "Open alerts", "Audit log", "Key versions", "P-001"):
        assert shown in overview
    assert re.search(r"CONFIDENTIAL</a></th><td class=\"num\">3<", overview)
    assert "3 backups</title>" in overview  # today's bar
    assert "restore requests" in overview


async def test_in_lockdown_the_backups_page_is_refused_like_the_api_and_audited(
    browser: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    await signed_in(browser, auditor.api_key)
    await services.incidents.set_level(actor(bootstrap_key), IncidentLevel.LOCKDOWN, "test")
    denials_before = len(await audit_entries(services.db, "AUTHZ_DENY"))

    overview = await browser.get("/")
    backups = await browser.get("/backups")

    assert overview.status_code == 200  # investigators keep their view…
    assert "Audit log" in overview.text
    assert "Backups by status" not in overview.text  # …of what stays open in lockdown
    assert backups.status_code == 423
    assert "INCIDENT_LOCKDOWN" in backups.text
    assert 'href="/console/backups"' in backups.text  # still the signed-in layout
    assert len(await audit_entries(services.db, "AUTHZ_DENY")) == denials_before + 1
