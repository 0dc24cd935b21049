"""Web console sessions over HTTP (SPEC §13.5): cookies, CSRF, expiry, and the API key behind
a session checked on every request, with the audit entries the API would leave."""

import hashlib
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from ssbg.domain.enums import Role
from ssbg.infrastructure.db.models import ApiKey, ConsoleSession
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.audit_chain import execute
from tests.support.clock import FixedClock
from tests.support.console import csrf_token_of, sign_in, signed_in
from tests.support.factories import create_api_key
from tests.support.rows import set_fields


async def _sessions(services: Services) -> list[ConsoleSession]:
    async with services.db.transaction(write=False) as tx:
        return list((await tx.session.execute(select(ConsoleSession))).scalars())


def _cookie_line(response: httpx.Response, name: str) -> str:
    lines = [v for v in response.headers.get_list("set-cookie") if v.startswith(f"{name}=")]
    assert len(lines) == 1, response.headers.get_list("set-cookie")
    return lines[0]


@pytest.mark.both_backends
async def test_sign_in_begins_a_sealed_session_held_only_as_a_verifier_and_audited(
    browser: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    answer = await sign_in(browser, bootstrap_key.api_key)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/"
    secret = browser.cookies["ssbg_session"]
    [session] = await _sessions(services)
    assert secret not in session.id
    assert session.id != hashlib.sha256(secret.encode()).hexdigest()
    assert session.seal is not None
    assert session.key_id == bootstrap_key.record.id
    assert session.expires_at - session.created_at == timedelta(hours=8)
    [entry] = await audit_entries(services.db, "CONSOLE_SIGN_IN")
    assert entry.actor_id == bootstrap_key.record.id
    assert entry.resource == f"api_key:{bootstrap_key.record.id}"
    assert entry.details["via"] == "console"
    assert (await browser.get("/")).status_code == 200


async def test_session_cookie_is_http_only_strict_and_scoped_to_the_console(
    browser: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    answer = await sign_in(browser, bootstrap_key.api_key)

    line = _cookie_line(answer, "ssbg_session").lower()
    assert "httponly" in line
    assert "samesite=strict" in line
    assert "path=/console" in line
    assert "secure" not in line  # plain HTTP, no trusted proxy


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ["192.0.2.0/24"]}])
async def test_session_cookie_is_secure_behind_a_trusted_tls_proxy(
    browser: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    browser.headers["X-Forwarded-Proto"] = "https"
    form = await browser.get("/sign-in")
    sign_in_cookie = _cookie_line(form, "ssbg_sign_in")
    # httpx keeps a Secure cookie from an http:// URL to itself: sent back by hand
    value = sign_in_cookie.split(";", 1)[0].split("=", 1)[1]

    answer = await browser.post(
        "/sign-in",
        data={"api_key": bootstrap_key.api_key, "csrf_token": csrf_token_of(form.text)},
        headers={"Cookie": f"ssbg_sign_in={value}"},
    )

    assert answer.status_code == 303
    assert "; secure" in sign_in_cookie.lower()
    assert "; secure" in _cookie_line(answer, "ssbg_session").lower()


async def test_forwarded_proto_from_an_untrusted_peer_is_ignored(
    browser: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    browser.headers["X-Forwarded-Proto"] = "https"

    answer = await sign_in(browser, bootstrap_key.api_key)

    assert "secure" not in _cookie_line(answer, "ssbg_session").lower()


async def test_a_wrong_key_is_refused_with_an_audited_auth_failure(
    browser: httpx.AsyncClient, services: Services
) -> None:
    answer = await sign_in(browser, "ssbg_" + "0" * 32)

    assert answer.status_code == 401
    assert "That API key was not accepted." in answer.text
    assert "ssbg_session" not in browser.cookies
    [failure] = await audit_entries(services.db, "AUTH_FAILURE")
    assert failure.details == {"reason": "UNKNOWN"}
    assert failure.source_ip == "192.0.2.10"
    assert await _sessions(services) == []


@pytest.mark.parametrize("settings_overrides", [{"auth_failure_limit": 3}])
async def test_failed_sign_ins_are_throttled_like_the_api(
    browser: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    answers = [await sign_in(browser, "ssbg_" + "1" * 32) for _ in range(6)]
    api = await browser.get("http://ssbg.test/api/v1/me", headers={"X-API-Key": "nonsense"})
    valid = await sign_in(browser, bootstrap_key.api_key)

    # more than the limit (3) in the window, then 429 (SPEC §13.2)
    assert [answer.status_code for answer in answers] == [401, 401, 401, 401, 429, 429]
    assert int(answers[4].headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in answers[4].text
    assert api.status_code == 429  # one count for the console and the API
    assert len(await audit_entries(services.db, "AUTH_FAILURE")) == 4
    assert len(await audit_entries(services.db, "AUTH_THROTTLED")) == 1
    assert valid.status_code == 303  # a valid key from the address still works


async def test_sign_in_without_its_forms_token_is_refused_before_the_key_is_checked(
    browser: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    await browser.get("/sign-in")
    before = len(await audit_entries(services.db))

    forged = await browser.post(
        "/sign-in", data={"api_key": bootstrap_key.api_key, "csrf_token": "0" * 64}
    )
    missing = await browser.post("/sign-in", data={"api_key": bootstrap_key.api_key})

    assert forged.status_code == missing.status_code == 403
    assert "CSRF_TOKEN_INVALID" in forged.text
    assert await _sessions(services) == []
    assert len(await audit_entries(services.db)) == before


async def test_another_browsers_sign_in_token_does_not_fit(
    browser: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    theirs = csrf_token_of((await browser.get("/sign-in")).text)
    browser.cookies.clear()
    await browser.get("/sign-in")  # this browser's own sign-in cookie

    answer = await browser.post(
        "/sign-in", data={"api_key": bootstrap_key.api_key, "csrf_token": theirs}
    )

    assert answer.status_code == 403
    assert await _sessions(services) == []


async def test_sign_out_with_a_wrong_token_is_refused_and_changes_nothing(
    browser: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    token = await signed_in(browser, bootstrap_key.api_key)

    refused = await browser.post("/sign-out", data={"csrf_token": token[::-1]})
    missing = await browser.post("/sign-out")

    assert refused.status_code == missing.status_code == 403
    assert "CSRF_TOKEN_INVALID" in refused.text
    assert (await browser.get("/")).status_code == 200
    [session] = await _sessions(services)
    assert session.revoked_at is None
    assert await audit_entries(services.db, "CONSOLE_SIGN_OUT") == []


async def test_sign_out_ends_the_session_and_is_audited(
    browser: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    token = await signed_in(browser, bootstrap_key.api_key)
    secret = browser.cookies["ssbg_session"]

    answer = await browser.post("/sign-out", data={"csrf_token": token})
    browser.cookies.set("ssbg_session", secret, domain="ssbg.test", path="/console")
    replayed = await browser.get("/")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in"
    assert replayed.status_code == 303  # the old cookie is worth nothing now
    assert replayed.headers["location"] == "/console/sign-in"
    [session] = await _sessions(services)
    assert session.revoked_at is not None
    [entry] = await audit_entries(services.db, "CONSOLE_SIGN_OUT")
    assert entry.actor_id == bootstrap_key.record.id


async def test_a_session_idle_longer_than_the_idle_time_is_over(
    browser: httpx.AsyncClient, clock: FixedClock, bootstrap_key: IssuedApiKey
) -> None:
    await signed_in(browser, bootstrap_key.api_key)
    clock.advance(minutes=14)
    kept = await browser.get("/")  # activity moves the idle expiry on
    clock.advance(minutes=14)
    still = await browser.get("/")
    clock.advance(minutes=15, seconds=1)

    idle = await browser.get("/")

    assert kept.status_code == still.status_code == 200
    assert idle.status_code == 303
    assert idle.headers["location"] == "/console/sign-in"


@pytest.mark.parametrize("settings_overrides", [{"console_session_hours": 1}])
async def test_a_session_ends_at_its_absolute_expiry_however_active(
    browser: httpx.AsyncClient, clock: FixedClock, bootstrap_key: IssuedApiKey
) -> None:
    await signed_in(browser, bootstrap_key.api_key)
    statuses = []
    for _ in range(6):
        clock.advance(minutes=10)
        statuses.append((await browser.get("/")).status_code)

    assert statuses == [200, 200, 200, 200, 200, 303]


async def test_a_session_ends_with_its_api_key(
    browser: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    expiring = await create_api_key(
        services, Role.AUDITOR, expires_at=clock.now() + timedelta(minutes=5)
    )
    await signed_in(browser, expiring.api_key)
    clock.advance(minutes=6)

    answer = await browser.get("/backups")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?ended=1"
    [failure] = await audit_entries(services.db, "AUTH_FAILURE")
    assert failure.details == {"reason": "EXPIRED"}
    assert failure.actor_id == expiring.record.id
    [session] = await _sessions(services)
    assert session.revoked_at is not None
    ended = await browser.get("http://ssbg.test" + answer.headers["location"])
    assert "Your session has ended" in ended.text


async def test_a_session_from_outside_its_keys_allow_list_is_refused(
    browser: httpx.AsyncClient, services: Services
) -> None:
    fenced = await create_api_key(services, Role.AUDITOR, allowed_ips=["192.0.2.10/32"])
    await signed_in(browser, fenced.api_key)
    async with services.db.transaction(write=True) as tx:
        key = await tx.api_keys.get_or_none(fenced.record.id)
        assert key is not None
        key.allowed_ips = ["198.51.100.0/24"]

    answer = await browser.get("/")

    assert answer.status_code == 303
    [failure] = await audit_entries(services.db, "AUTH_FAILURE")
    assert failure.details == {"reason": "IP_NOT_ALLOWED"}


async def test_a_session_row_changed_behind_the_gateway_is_refused_and_audited(
    browser: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    await signed_in(browser, bootstrap_key.api_key)
    [session] = await _sessions(services)
    await execute(
        services,
        update(ConsoleSession.__table__)  # type: ignore[arg-type]
        .where(ConsoleSession.id == session.id)
        .values(expires_at=session.expires_at + timedelta(days=365)),
    )

    answer = await browser.get("/")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?ended=1"
    [failure] = await audit_entries(services.db, "AUTH_FAILURE")
    assert failure.details == {"reason": "TAMPERED"}
    assert failure.resource == f"api_key:{bootstrap_key.record.id}"


async def test_a_made_up_session_cookie_is_no_session(
    browser: httpx.AsyncClient, services: Services
) -> None:
    browser.cookies.set("ssbg_session", "A" * 43, domain="ssbg.test", path="/console")

    answer = await browser.get("/")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in"
    assert await audit_entries(services.db, "AUTH_FAILURE") == []


async def test_a_session_ends_when_its_api_key_is_revoked(
    browser: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    await signed_in(browser, auditor.api_key)
    await set_fields(services, ApiKey, auditor.record.id, revoked_at=clock.now())

    answer = await browser.get("/")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?ended=1"
    [failure] = await audit_entries(services.db, "AUTH_FAILURE")
    assert failure.details == {"reason": "REVOKED"}
