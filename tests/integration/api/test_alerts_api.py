"""Alerts as people handle them (SPEC §13.2): the lifecycle over the API, escalation from
stored timestamps and the sweep that records it, automatic incident levels that never go
down, and the level-3 seal on every route."""

import asyncio
import re
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from ssbg.api.paths import API_PREFIX
from ssbg.domain.enums import Role
from ssbg.domain.incident import IncidentLevel
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.alerts import raise_m9
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.restores import set_incident_level

BAD_KEY = {"X-API-Key": "ssbg_" + "0" * 32}


async def step(
    client: httpx.AsyncClient, key: IssuedApiKey, alert_id: str, name: str, note: str | None
) -> httpx.Response:
    body = {"note": note} if note is not None else None
    return await client.post(f"/admin/alerts/{alert_id}/{name}", headers=headers(key), json=body)


@pytest.mark.both_backends
async def test_an_alert_is_acknowledged_investigated_and_resolved_each_step_audited(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    alert_id = await raise_m9(client, bootstrap_key)

    acked = await step(client, admin, alert_id, "acknowledge", "looking")
    investigating = await step(client, admin, alert_id, "investigate", None)
    resolved = await step(client, admin, alert_id, "resolve", "planned change CHG-12")

    assert [r.json()["data"]["status"] for r in (acked, investigating, resolved)] == [
        "ACKNOWLEDGED",
        "INVESTIGATING",
        "RESOLVED",
    ]
    final = resolved.json()["data"]
    assert final["acknowledged_by"] == final["resolved_by"] == str(admin.record.id)
    assert final["note"] == "planned change CHG-12"
    steps = [
        (entry.action, entry.details["from_status"], entry.details["to_status"])
        for entry in await audit_entries(services.db)
        if entry.resource == f"alert:{alert_id}" and entry.action != "ALERT_TRIGGER"
    ]
    assert steps == [
        ("ALERT_ACK", "NEW", "ACKNOWLEDGED"),
        ("ALERT_INVESTIGATE", "ACKNOWLEDGED", "INVESTIGATING"),
        ("ALERT_RESOLVE", "INVESTIGATING", "RESOLVED"),
    ]
    shown = await client.get(f"/admin/alerts/{alert_id}", headers=headers(admin))
    assert shown.json()["data"] == final
    await assert_chain_valid(services.db)


@pytest.mark.parametrize(
    ("moves", "refused"),
    [
        ([], "investigate"),
        ([], "resolve"),
        (["acknowledge"], "acknowledge"),
        (["acknowledge", "investigate"], "investigate"),
        (["acknowledge", "resolve"], "acknowledge"),
        (["acknowledge", "resolve"], "resolve"),
    ],
)
async def test_an_illegal_move_is_409_and_changes_nothing(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    moves: list[str],
    refused: str,
) -> None:
    alert_id = await raise_m9(client, bootstrap_key)
    for move in moves:
        assert (await step(client, bootstrap_key, alert_id, move, "n")).status_code == 200
    before = (await client.get(f"/admin/alerts/{alert_id}", headers=headers(bootstrap_key))).json()
    entries = len(await audit_entries(services.db))

    response = await step(client, bootstrap_key, alert_id, refused, "n")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "INVALID_STATE_TRANSITION"
    after = (await client.get(f"/admin/alerts/{alert_id}", headers=headers(bootstrap_key))).json()
    assert after["data"] == before["data"]
    assert len(await audit_entries(services.db)) == entries


async def test_resolving_needs_a_note_and_an_unknown_alert_is_404(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    alert_id = await raise_m9(client, bootstrap_key)
    await step(client, bootstrap_key, alert_id, "acknowledge", None)

    without = await step(client, bootstrap_key, alert_id, "resolve", None)
    empty = await client.post(
        f"/admin/alerts/{alert_id}/resolve", headers=headers(bootstrap_key), json={}
    )
    unknown = await step(client, bootstrap_key, str(uuid4()), "acknowledge", None)

    assert without.status_code == 422
    assert list(without.json()["error"]["details"]) == ["body"]
    assert empty.status_code == 422
    assert list(empty.json()["error"]["details"]) == ["note"]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "NOT_FOUND"


async def test_a_trigger_after_resolution_opens_a_new_alert(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    first = await raise_m9(client, bootstrap_key)
    await step(client, bootstrap_key, first, "acknowledge", None)
    await step(client, bootstrap_key, first, "resolve", "done")
    shown = await client.get(f"/admin/alerts/{first}", headers=headers(bootstrap_key))
    policy = shown.json()["data"]["subject"].removeprefix("policy:")

    patched = await client.patch(
        f"/admin/policies/{policy}", headers=headers(bootstrap_key), json={"priority": 9}
    )

    assert patched.status_code == 200
    m9 = (
        await client.get("/admin/alerts", params={"rule_id": "M9"}, headers=headers(bootstrap_key))
    ).json()["data"]
    assert sorted((a["status"], a["count"]) for a in m9) == [("NEW", 1), ("RESOLVED", 1)]
    assert {a["subject"] for a in m9} == {f"policy:{policy}"}


async def test_alerts_are_listed_newest_first_filtered_and_paged(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    ids = []
    for n in range(5):
        clock.advance(seconds=1)
        ids.append(await raise_m9(client, bootstrap_key, name=f"p{n}"))
    clock.advance(seconds=1)
    for _ in range(5):
        await client.get("/me", headers=BAD_KEY)

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"rule_id": "M9", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (
            await client.get("/admin/alerts", params=params, headers=headers(bootstrap_key))
        ).json()
        seen += [alert["alert_id"] for alert in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    high = await client.get(
        "/admin/alerts", params={"severity": "HIGH"}, headers=headers(bootstrap_key)
    )
    bad = await client.get(
        "/admin/alerts", params={"cursor": "nonsense"}, headers=headers(bootstrap_key)
    )

    assert seen == list(reversed(ids))
    assert [a["rule_id"] for a in high.json()["data"]] == ["M1"]
    assert bad.status_code == 422


@pytest.mark.both_backends
async def test_an_unacknowledged_alert_escalates_and_the_sweep_records_it_once(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    alert_id = await raise_m9(client, bootstrap_key)
    clock.advance(seconds=899)
    assert await services.alerts.escalate_overdue() == []
    by_status = {
        status: (
            await client.get(
                "/admin/alerts", params={"status": status}, headers=headers(bootstrap_key)
            )
        ).json()["data"]
        for status in ("NEW", "ESCALATED")
    }
    assert ([a["alert_id"] for a in by_status["NEW"]], by_status["ESCALATED"]) == ([alert_id], [])

    clock.advance(seconds=1)  # 900 s unacknowledged: escalated as soon as it is read
    shown = await client.get(f"/admin/alerts/{alert_id}", headers=headers(bootstrap_key))
    escalated = await client.get(
        "/admin/alerts", params={"status": "ESCALATED"}, headers=headers(bootstrap_key)
    )
    swept = await services.alerts.escalate_overdue()
    again = await services.alerts.escalate_overdue()

    assert shown.json()["data"]["status"] == "ESCALATED"
    assert [a["alert_id"] for a in escalated.json()["data"]] == [alert_id]
    assert ([str(a) for a in swept], again) == ([alert_id], [])
    [entry] = await audit_entries(services.db, "ALERT_ESCALATE")
    assert (entry.resource, entry.actor_id) == (f"alert:{alert_id}", None)
    assert entry.details["unacknowledged_seconds"] == 900
    acked = await step(client, bootstrap_key, alert_id, "acknowledge", "on it")
    assert acked.json()["data"]["status"] == "ACKNOWLEDGED"


@pytest.mark.parametrize("settings_overrides", [{"alert_escalation_seconds": 60}])
async def test_the_escalation_delay_is_configurable(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    alert_id = await raise_m9(client, bootstrap_key)
    clock.advance(seconds=60)
    shown = await client.get(f"/admin/alerts/{alert_id}", headers=headers(bootstrap_key))
    assert shown.json()["data"]["status"] == "ESCALATED"


# -- automatic incident levels --------------------------------------------------------------


@pytest.mark.both_backends
async def test_an_alert_never_lowers_the_incident_level(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    await set_incident_level(services, bootstrap_key, IncidentLevel.QUARANTINE)
    changes = len(await audit_entries(services.db, "INCIDENT_LEVEL_CHANGE"))

    await raise_m9(client, bootstrap_key)  # a level-1 rule

    incident = (await client.get("/admin/incident", headers=headers(bootstrap_key))).json()
    [alert] = (await client.get("/admin/alerts", headers=headers(bootstrap_key))).json()["data"]
    assert incident["data"]["level"] == 2
    assert alert["incident_level_applied"] is None
    assert len(await audit_entries(services.db, "INCIDENT_LEVEL_CHANGE")) == changes


async def test_level_1_from_an_alert_reverts_half_an_hour_after_the_last_alert(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    await raise_m9(client, bootstrap_key, name="a")
    clock.advance(minutes=20)
    await raise_m9(client, bootstrap_key, name="b")  # a new alert keeps level 1 up
    clock.advance(minutes=20)
    still = (await client.get("/admin/incident", headers=headers(bootstrap_key))).json()["data"]
    clock.advance(minutes=11)
    later = (await client.get("/admin/incident", headers=headers(bootstrap_key))).json()["data"]

    assert (still["level"], later["level"]) == (1, 0)
    assert [change["alert_id"] is not None for change in later["history"]] == [True]


@pytest.mark.both_backends
async def test_concurrent_triggers_from_one_address_open_one_alert(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    await asyncio.gather(*(client.get("/me", headers=BAD_KEY) for _ in range(12)))

    listed = (await client.get("/admin/alerts", headers=headers(bootstrap_key))).json()["data"]
    assert [(a["rule_id"], a["count"]) for a in listed] == [("M1", 8)]
    assert len(await audit_entries(services.db, "ALERT_TRIGGER")) == 1
    assert len(await audit_entries(services.db, "INCIDENT_LEVEL_CHANGE")) == 1
    await assert_chain_valid(services.db)


# -- the level-3 seal ------------------------------------------------------------------------

# What investigators keep at level 3 (SPEC §13.2); everything else answers 423.
OPEN_IN_LOCKDOWN = {
    ("GET", "/health"),
    ("GET", "/health/ready"),
    ("GET", "/health/detailed"),
    ("GET", "/me"),
    ("GET", "/admin/incident"),
    ("GET", "/admin/alerts"),
    ("GET", "/admin/alerts/{alert_id}"),
    ("GET", "/audit/entries"),
    ("GET", "/audit/checkpoints"),
    ("POST", "/audit/validate"),
    ("GET", "/audit/export"),
}


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), path.removeprefix(API_PREFIX))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(API_PREFIX)
        for method in operations
    )


@pytest.mark.both_backends
async def test_at_level_3_every_route_but_the_investigators_answers_423(
    client: httpx.AsyncClient,
    shared_app: FastAPI,
    services: Services,
    bootstrap_key: IssuedApiKey,
) -> None:
    await set_incident_level(services, bootstrap_key, IncidentLevel.LOCKDOWN)
    routes = api_routes(shared_app)
    assert set(routes) >= OPEN_IN_LOCKDOWN
    names = {"version": "P-001"}

    answers = {}
    for method, template in routes:
        path = re.sub(r"\{(\w+)\}", lambda m: names.get(m.group(1), str(uuid4())), template)
        response = await client.request(method, path, headers=headers(bootstrap_key), json={})
        answers[(method, template)] = response.status_code

    sealed = {route for route, status in answers.items() if status == 423}
    assert sealed == set(routes) - OPEN_IN_LOCKDOWN
    assert all(answers[route] != 423 for route in OPEN_IN_LOCKDOWN)
    refusals = await audit_entries(services.db, "AUTHZ_DENY")
    assert {entry.details["reason"] for entry in refusals} == {"INCIDENT_LOCKDOWN"}
    assert len(refusals) == len(sealed)


@pytest.mark.both_backends
async def test_an_alert_handled_while_it_keeps_triggering_loses_no_request(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    for _ in range(5):
        await client.get("/me", headers=BAD_KEY)
    [alert] = (await client.get("/admin/alerts", headers=headers(bootstrap_key))).json()["data"]

    answers = await asyncio.gather(
        step(client, bootstrap_key, alert["alert_id"], "acknowledge", "on it"),
        *(client.get("/me", headers=BAD_KEY) for _ in range(8)),
    )

    assert answers[0].status_code == 200
    assert [answer.status_code for answer in answers[1:]] == [401] * 8
    shown = await client.get(f"/admin/alerts/{alert['alert_id']}", headers=headers(bootstrap_key))
    assert (shown.json()["data"]["status"], shown.json()["data"]["count"]) == ("ACKNOWLEDGED", 9)
