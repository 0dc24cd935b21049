"""The console's Alerts and Incident pages over HTTP: what each role may see and do, the CSRF
refusal on every new form, the TOTP code the incident form needs, and that each action is the
API's own — the same audit entries as the same action over the API."""

import re
from typing import Any

import httpx
import pyotp
import pytest

from ssbg.domain.enums import Role
from ssbg.domain.incident import IncidentLevel
from ssbg.infrastructure.db.models import AuditLogEntry
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.alerts import raise_m9
from tests.support.audit import audit_entries, head_sequence
from tests.support.clock import FixedClock
from tests.support.console import assert_csp_clean, csrf_token_of, signed_in
from tests.support.factories import create_api_key, headers
from tests.support.outbox import post_incident_level
from tests.support.restores import set_incident_level

STEPS = ("acknowledge", "investigate", "resolve")


def _comparable(entry: AuditLogEntry, alert_id: str | None = None) -> dict[str, Any]:
    """What must be the same between the console's entry and the API's for one action."""
    resource = entry.resource.replace(alert_id, "<alert>") if alert_id else entry.resource
    return {
        "action": entry.action,
        "actor_id": entry.actor_id,
        "actor_role": entry.actor_role,
        "resource": resource,
        "result": entry.result,
        "source_ip": entry.source_ip,
        "details": sorted(entry.details),
    }


async def _entries_after(services: Services, sequence: int) -> list[AuditLogEntry]:
    return [e for e in await audit_entries(services.db) if e.sequence_number > sequence]


def _totp(key: IssuedApiKey, clock: FixedClock) -> str:
    """A fresh code for ``key`` (each TOTP step is accepted once)."""
    assert key.totp_secret is not None
    return pyotp.TOTP(key.totp_secret).at(clock.advance(seconds=30))


async def _alert_json(client: httpx.AsyncClient, key: IssuedApiKey, alert_id: str) -> Any:
    return (await client.get(f"/admin/alerts/{alert_id}", headers=headers(key))).json()["data"]


@pytest.mark.both_backends
async def test_alert_steps_in_the_console_are_audited_exactly_as_over_the_api(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    by_api = await raise_m9(client, bootstrap_key, "first")
    by_console = await raise_m9(client, bootstrap_key, "second")
    token = await signed_in(browser, admin.api_key)

    before_api = await head_sequence(services.db)
    for step in STEPS:
        answer = await client.post(
            f"/admin/alerts/{by_api}/{step}", headers=headers(admin), json={"note": f"{step} n"}
        )
        assert answer.status_code == 200, answer.text
    api_entries = await _entries_after(services, before_api)
    before_console = await head_sequence(services.db)
    for step in STEPS:
        answer = await browser.post(
            f"/alerts/{by_console}/{step}", data={"csrf_token": token, "note": f"{step} n"}
        )
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == f"/console/alerts/{by_console}"
    console_entries = await _entries_after(services, before_console)

    assert [e.action for e in console_entries] == [
        "ALERT_ACK",
        "ALERT_INVESTIGATE",
        "ALERT_RESOLVE",
    ]
    assert [_comparable(e, by_console) for e in console_entries] == [
        _comparable(e, by_api) for e in api_entries
    ]
    shown = await _alert_json(client, admin, by_console)
    assert (shown["status"], shown["resolved_by"], shown["note"]) == (
        "RESOLVED",
        str(admin.record.id),
        "resolve n",
    )
    page = await browser.get(f"/alerts/{by_console}")
    assert "RESOLVED" in page.text
    assert '<form method="post" action="/console/alerts/' not in page.text  # nothing left


async def test_the_alerts_page_lists_filters_and_offers_only_the_next_steps(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    first = await raise_m9(client, bootstrap_key, "first")
    clock.advance(seconds=1)  # listed newest first
    second = await raise_m9(client, bootstrap_key, "second")
    token = await signed_in(browser, bootstrap_key.api_key)
    await browser.post(f"/alerts/{first}/acknowledge", data={"csrf_token": token})

    everything = await browser.get("/alerts")
    new = await browser.get("/alerts", params={"status": "NEW", "severity": ""})
    high = await browser.get("/alerts", params={"severity": "HIGH"})
    bad = await browser.get("/alerts", params={"severity": "HUGE"})
    detail = await browser.get(f"/alerts/{first}")
    unknown = await browser.get("/alerts/not-an-id")

    listed = re.findall(r'href="/console/alerts/([0-9a-f-]{36})"', everything.text)
    assert listed == [second, first]  # newest first
    assert re.findall(r'href="/console/alerts/([0-9a-f-]{36})"', new.text) == [second]
    assert "No alerts match these filters." in high.text
    assert re.search(r"MEDIUM</a></dt><dd>2<", everything.text)  # open by severity
    assert bad.status_code == 422
    assert re.findall(r'action="/console/alerts/[^/]+/(\w+)"', detail.text) == [
        "investigate",
        "resolve",
    ]
    assert unknown.status_code == 404
    for html in (everything.text, detail.text, (await browser.get("/incident")).text):
        assert_csp_clean(html)


async def test_resolving_without_a_note_or_out_of_turn_changes_nothing(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
) -> None:
    alert_id = await raise_m9(client, bootstrap_key)
    token = await signed_in(browser, bootstrap_key.api_key)
    before = await _alert_json(client, bootstrap_key, alert_id)

    out_of_turn = await browser.post(f"/alerts/{alert_id}/investigate", data={"csrf_token": token})
    await browser.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token})
    no_note = await browser.post(
        f"/alerts/{alert_id}/resolve", data={"csrf_token": token, "note": "  "}
    )

    assert out_of_turn.status_code == 409
    assert "INVALID_STATE_TRANSITION" in out_of_turn.text
    assert no_note.status_code == 422
    after = await _alert_json(client, bootstrap_key, alert_id)
    assert (before["status"], after["status"]) == ("NEW", "ACKNOWLEDGED")


async def test_each_new_form_refuses_a_missing_or_wrong_csrf_token(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    alert_id = await raise_m9(client, bootstrap_key)
    await signed_in(browser, bootstrap_key.api_key)
    before = await head_sequence(services.db)
    forms = [(f"/alerts/{alert_id}/{step}", {"note": "n"}) for step in STEPS]
    forms.append(("/incident", {"level": "2", "reason": "drill", "totp_code": ""}))

    for path, fields in forms:
        for token in ({}, {"csrf_token": "forged"}):
            if path == "/incident":
                fields = {**fields, "totp_code": _totp(bootstrap_key, clock)}
            answer = await browser.post(path, data={**fields, **token})
            assert answer.status_code == 403, path
            assert "CSRF_TOKEN_INVALID" in answer.text

    assert await head_sequence(services.db) == before  # nothing done, nothing audited
    assert (await _alert_json(client, bootstrap_key, alert_id))["status"] == "NEW"
    assert (await services.incidents.get_status()).level is IncidentLevel.ALERT  # from M9


@pytest.mark.both_backends
async def test_raising_the_level_needs_the_totp_code_and_is_audited_as_over_the_api(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    token = await signed_in(browser, bootstrap_key.api_key)
    form = {"csrf_token": token, "level": "2", "reason": "suspicious restores"}

    missing = await browser.post("/incident", data=form)
    wrong = await browser.post("/incident", data={**form, "totp_code": "000000"})
    assert (await services.incidents.get_status()).level is IncidentLevel.NORMAL

    before_api = await head_sequence(services.db)
    by_api = await post_incident_level(
        client, bootstrap_key, 1, "drill", totp_at=clock.advance(seconds=30)
    )
    assert by_api.status_code == 200, by_api.text
    api_entries = await _entries_after(services, before_api)
    before_console = await head_sequence(services.db)
    done = await browser.post("/incident", data={**form, "totp_code": _totp(bootstrap_key, clock)})
    console_entries = await _entries_after(services, before_console)
    page = await browser.get("/incident")

    for refused, code in ((missing, "AUTH_MFA_REQUIRED"), (wrong, "AUTH_MFA_INVALID")):
        assert refused.status_code == 401
        assert code in refused.text
        assert 'name="totp_code"' in refused.text  # the form again, as it was filled
        assert "suspicious restores</textarea>" in refused.text
        assert csrf_token_of(refused.text) == token
    assert done.status_code == 303
    assert done.headers["location"] == "/console/incident"
    assert (await services.incidents.get_status()).level is IncidentLevel.QUARANTINE
    assert [e.action for e in console_entries] == ["MFA_SUCCESS", "INCIDENT_LEVEL_CHANGE"]
    assert [_comparable(e) for e in console_entries] == [_comparable(e) for e in api_entries]
    assert console_entries[1].details["to_level"] == 2
    assert "2 · QUARANTINE" in page.text
    assert "suspicious restores" in page.text  # the reason, and the history


async def test_each_role_sees_and_may_do_what_the_api_allows(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    alert_id = await raise_m9(client, bootstrap_key)
    seen: dict[Role, dict[str, int]] = {}
    for role in (Role.OPERATOR, Role.AUDITOR, Role.ADMIN):
        key = await create_api_key(services, role)
        browser.cookies.clear()
        token = await signed_in(browser, key.api_key)
        overview = (await browser.get("/")).text
        seen[role] = {
            "nav alerts": int('href="/console/alerts"' in overview),
            "nav incident": int('href="/console/incident"' in overview),
            "alerts": (await browser.get("/alerts")).status_code,
            "alert": (await browser.get(f"/alerts/{alert_id}")).status_code,
            "incident": (await browser.get("/incident")).status_code,
            "set form": int('action="/console/incident"' in (await browser.get("/incident")).text),
            "step": (
                await browser.post(f"/alerts/{alert_id}/investigate", data={"csrf_token": token})
            ).status_code,
            "set level": (
                await browser.post(
                    "/incident",
                    data={"csrf_token": token, "level": "2", "reason": "drill"},
                )
            ).status_code,
        }

    refused = {"alerts": 403, "alert": 403, "incident": 403, "step": 403, "set level": 403}
    hidden = {"nav alerts": 0, "nav incident": 0, "set form": 0}
    assert seen[Role.OPERATOR] == seen[Role.AUDITOR] == {**refused, **hidden}
    assert seen[Role.ADMIN] == {
        "nav alerts": 1,
        "nav incident": 1,
        "alerts": 200,
        "alert": 200,
        "incident": 200,
        "set form": 0,
        "step": 409,  # allowed, but a NEW alert is acknowledged first
        "set level": 403,
    }
    assert (await services.incidents.get_status()).level is IncidentLevel.ALERT


async def test_in_lockdown_alerts_stay_readable_but_no_step_is_taken(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    alert_id = await raise_m9(client, bootstrap_key)
    token = await signed_in(browser, bootstrap_key.api_key)
    await set_incident_level(services, bootstrap_key, IncidentLevel.LOCKDOWN)

    alerts = await browser.get("/alerts")
    detail = await browser.get(f"/alerts/{alert_id}")
    incident = await browser.get("/incident")
    step = await browser.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token})
    lower = await browser.post(
        "/incident",
        data={
            "csrf_token": token,
            "level": "0",
            "reason": "over",
            "totp_code": _totp(bootstrap_key, clock),
        },
    )

    assert (alerts.status_code, detail.status_code, incident.status_code) == (200, 200, 200)
    assert "3 · LOCKDOWN" in incident.text
    assert 'action="/console/alerts/' not in detail.text  # no form for a refused action
    assert 'action="/console/incident"' not in incident.text
    assert (step.status_code, lower.status_code) == (423, 423)
    assert "INCIDENT_LOCKDOWN" in step.text
    assert (await services.incidents.get_status()).level is IncidentLevel.LOCKDOWN


async def test_the_alerts_list_pages_through_the_same_listing_as_the_api(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    raised = []
    for number in range(21):
        clock.advance(seconds=1)
        raised.append(await raise_m9(client, bootstrap_key, f"policy-{number}"))
    await signed_in(browser, bootstrap_key.api_key)

    first = await browser.get("/alerts", params={"status": "NEW"})
    next_link = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert next_link is not None
    assert "status=NEW" in next_link.group(1)
    second = await browser.get("http://ssbg.test" + next_link.group(1).replace("&amp;", "&"))

    listed = [
        re.findall(r'href="/console/alerts/([0-9a-f-]{36})"', page.text) for page in (first, second)
    ]
    assert [len(ids) for ids in listed] == [20, 1]
    assert listed[0] + listed[1] == raised[::-1]
    assert 'rel="next"' not in second.text
    assert 'rel="first"' in second.text
