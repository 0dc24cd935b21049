"""The alert and incident client commands against a real gateway over HTTP (uvicorn on a
loopback port): ``ssbg alerts list|show|ack|investigate|resolve``, ``ssbg incident show|set``.

The alert is raised for real: a policy change over the API fires rule M9 (MEDIUM), which
raises the incident level to 1 with the alert's id.
"""

from typing import Any

import httpx
import pyotp

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.audit_chain import run_cli
from tests.support.cli import env_for
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers

ALERT_FIELDS = {
    "alert_id",
    "rule_id",
    "severity",
    "status",
    "subject",
    "triggered_at",
    "last_seen_at",
    "count",
    "context",
    "incident_level_applied",
    "acknowledged_by",
    "acknowledged_at",
    "resolved_by",
    "resolved_at",
    "note",
}
INCIDENT_FIELDS = {
    "level",
    "name",
    "reason",
    "changed_at",
    "changed_by",
    "last_alert_at",
    "auto_revert_at",
    "history",
}


def totp(key: IssuedApiKey, clock: FixedClock) -> str:
    assert key.totp_secret is not None
    return pyotp.TOTP(key.totp_secret).at(clock.now())


def table_lines(stdout: str) -> list[str]:
    """The table's lines (the gateway, served in this process, logs to the same stdout)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("alert_id"))
    return lines[start:]


async def change_a_policy(url: str, admin: IssuedApiKey, name: str = "no-finance-restores") -> None:
    """``POST /admin/policies``: rule M9 fires in the same request."""
    async with httpx.AsyncClient(base_url=f"{url}/api/v1") as http:
        created = await http.post(
            "/admin/policies",
            headers=headers(admin),
            json={
                "name": name,
                "effect": "deny",
                "rule": {"operations": ["restore"], "source_systems": ["finance-*"]},
            },
        )
    assert created.status_code == 201, created.text


async def raised_alert(url: str, admin: IssuedApiKey) -> dict[str, Any]:
    await change_a_policy(url, admin)
    listed = await run_cli(["alerts", "list", "--json"], env_for(url, admin))
    assert listed.exit_code == 0, listed.stderr
    [alert] = listed.json()
    return dict(alert)


async def test_a_policy_change_alert_is_listed_and_shown(
    gateway_url: str, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    await change_a_policy(gateway_url, admin)
    env = env_for(gateway_url, admin)

    listed = await run_cli(["alerts", "list", "--json"], env)
    [alert] = listed.json()
    shown = await run_cli(["alerts", "show", alert["alert_id"], "--json"], env)
    table = await run_cli(["alerts", "list"], env)
    text = await run_cli(["alerts", "show", alert["alert_id"]], env)
    by_rule = await run_cli(
        ["alerts", "list", "--rule", "m9", "--severity", "medium", "--json"], env
    )
    other_rule = await run_cli(["alerts", "list", "--rule", "M1", "--json"], env)
    resolved = await run_cli(["alerts", "list", "--status", "RESOLVED", "--json"], env)

    assert listed.exit_code == 0, listed.stderr
    assert set(alert) == ALERT_FIELDS
    triggers = await audit_entries(services.db, "ALERT_TRIGGER")
    assert [e.resource for e in triggers] == [f"alert:{alert['alert_id']}"]
    assert (alert["rule_id"], alert["severity"], alert["status"]) == ("M9", "MEDIUM", "NEW")
    assert (alert["count"], alert["incident_level_applied"]) == (1, 1)
    assert alert["subject"].startswith("policy:")
    assert alert["acknowledged_by"] is None
    assert alert["note"] is None
    assert alert["triggered_at"].endswith("Z")
    assert (shown.exit_code, shown.json()) == (0, alert)
    assert table.exit_code == 0
    lines = table_lines(table.stdout)
    header = lines[0].split()
    assert header == [
        "alert_id",
        "rule",
        "severity",
        "status",
        "subject",
        "count",
        "triggered_at",
        "(UTC)",
        "last_seen_at",
        "(UTC)",
    ]
    row = lines[2].split()
    assert row[:6] == [alert["alert_id"], "M9", "MEDIUM", "NEW", alert["subject"], "1"]
    assert text.exit_code == 0
    assert alert["alert_id"] in text.stdout
    assert "incident_level_applied" in text.stdout
    assert [a["alert_id"] for a in by_rule.json()] == [alert["alert_id"]]
    assert (other_rule.exit_code, other_rule.json()) == (0, [])
    assert resolved.json() == []


async def test_all_follows_the_cursors_past_the_first_page(
    gateway_url: str, services: Services, clock: FixedClock
) -> None:
    """Three alerts (one per subject: M9 per policy), pages of one."""
    admin = await create_api_key(services, Role.ADMIN)
    env = env_for(gateway_url, admin)
    for name in ("first", "second", "third"):
        await change_a_policy(gateway_url, admin, name)
        clock.advance(seconds=1)
    everything = await run_cli(["alerts", "list", "--json"], env)

    one_page = await run_cli(["alerts", "list", "--limit", "1", "--json"], env)
    followed = await run_cli(["alerts", "list", "--limit", "1", "--all", "--json"], env)
    hinted = await run_cli(["alerts", "list", "--limit", "1"], env)

    ids = [a["alert_id"] for a in everything.json()]
    assert len(ids) == 3  # M9's subject is the policy: one alert each
    assert len(one_page.json()) == 1
    assert [a["alert_id"] for a in followed.json()] == ids
    assert "ssbg alerts list --cursor" in hinted.stdout


async def test_an_alert_is_acknowledged_investigated_and_resolved_with_notes(
    gateway_url: str, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    alert = await raised_alert(gateway_url, admin)
    alert_id = alert["alert_id"]
    env = env_for(gateway_url, admin)

    acked = await run_cli(["alerts", "ack", alert_id, "--note", "looking", "--json"], env)
    investigating = await run_cli(["alerts", "investigate", alert_id], env)
    resolved = await run_cli(
        ["alerts", "resolve", alert_id, "--note", "planned change, ticket OPS-7", "--json"], env
    )

    assert acked.exit_code == 0, acked.stderr
    ack = acked.json()
    assert set(ack) == ALERT_FIELDS
    assert (ack["alert_id"], ack["status"], ack["note"]) == (alert_id, "ACKNOWLEDGED", "looking")
    assert ack["acknowledged_by"] == str(admin.record.id)
    assert investigating.exit_code == 0, investigating.stderr
    assert f"Alert {alert_id} (M9, " in investigating.stdout
    assert "is now INVESTIGATING." in investigating.stdout
    assert resolved.exit_code == 0, resolved.stderr
    done = resolved.json()
    assert (done["status"], done["note"]) == ("RESOLVED", "planned change, ticket OPS-7")
    assert done["resolved_by"] == str(admin.record.id)
    assert done["resolved_at"].endswith("Z")
    steps = [
        (e.action, e.resource, e.actor_id)
        for e in await audit_entries(services.db)
        if e.action in {"ALERT_ACK", "ALERT_INVESTIGATE", "ALERT_RESOLVE"}
    ]
    assert steps == [
        (action, f"alert:{alert_id}", admin.record.id)
        for action in ("ALERT_ACK", "ALERT_INVESTIGATE", "ALERT_RESOLVE")
    ]


async def test_refused_alert_steps_show_the_code_and_exit_non_zero(
    gateway_url: str, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    auditor = await create_api_key(services, Role.AUDITOR)
    alert = await raised_alert(gateway_url, admin)
    alert_id = alert["alert_id"]
    env = env_for(gateway_url, admin)

    no_note = await run_cli(["alerts", "resolve", alert_id], env)
    blank_note = await run_cli(["alerts", "resolve", alert_id, "--note", ""], env)
    too_early = await run_cli(["alerts", "resolve", alert_id, "--note", "done"], env)
    skipped = await run_cli(["alerts", "investigate", alert_id, "--json"], env)
    by_auditor = await run_cli(["alerts", "ack", alert_id], env_for(gateway_url, auditor))
    unknown = await run_cli(["alerts", "show", "00000000-0000-4000-8000-000000000000"], env)
    not_an_id = await run_cli(["alerts", "show", "nope"], env)
    no_key = await run_cli(["alerts", "list", "--json"], {"SSBG_API_KEY": ""})
    still = await run_cli(["alerts", "show", alert_id, "--json"], env)

    assert no_note.exit_code == 2  # usage: --note is required, nothing is sent
    assert "--note" in no_note.stderr
    assert blank_note.exit_code == 1
    assert "VALIDATION_ERROR" in blank_note.stderr
    assert too_early.exit_code == 1
    assert too_early.stderr.startswith("INVALID_STATE_TRANSITION: ")
    assert (skipped.exit_code, skipped.json()["error"]["code"]) == (1, "INVALID_STATE_TRANSITION")
    assert by_auditor.exit_code == 1
    assert by_auditor.stderr.startswith("FORBIDDEN_ROLE: ")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("NOT_FOUND: ")
    assert not_an_id.exit_code == 2
    assert (no_key.exit_code, no_key.json()["error"]["code"]) == (2, "USAGE")
    assert still.json()["status"] == "NEW"
    assert await audit_entries(services.db, "ALERT_RESOLVE") == []
    assert await audit_entries(services.db, "ALERT_ACK") == []


async def test_incident_show_names_the_alert_that_raised_the_level(
    gateway_url: str, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    alert = await raised_alert(gateway_url, admin)
    env = env_for(gateway_url, admin)

    shown = await run_cli(["incident", "show", "--json"], env)
    text = await run_cli(["incident", "show"], env)

    assert shown.exit_code == 0, shown.stderr
    incident = shown.json()
    assert set(incident) == INCIDENT_FIELDS
    assert (incident["level"], incident["name"]) == (1, "ALERT")
    assert incident["auto_revert_at"] is not None
    [change] = incident["history"]
    assert (change["from_level"], change["to_level"]) == (0, 1)
    assert (change["alert_id"], change["actor_id"]) == (alert["alert_id"], None)
    assert text.exit_code == 0
    assert "Incident level 1 (ALERT)" in text.stdout
    assert f"0 → 1  alert {alert['alert_id']}" in text.stdout
    assert "auto_revert_at:" in text.stdout


async def test_incident_set_needs_a_super_admin_with_a_totp_code(
    gateway_url: str, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    args = ["incident", "set", "--level", "2", "--reason", "ransomware on db-7", "--json"]

    no_answer = await run_cli(args, env_for(gateway_url, bootstrap_key), stdin="")
    by_admin = await run_cli(args, env_for(gateway_url, admin, SSBG_MFA_TOKEN=totp(admin, clock)))
    clock.advance(seconds=30)
    from_env = await run_cli(
        args, env_for(gateway_url, bootstrap_key, SSBG_MFA_TOKEN=totp(bootstrap_key, clock))
    )
    clock.advance(seconds=30)
    prompted = await run_cli(
        ["incident", "set", "--level", "1", "--reason", "contained"],
        env_for(gateway_url, bootstrap_key),
        stdin=totp(bootstrap_key, clock),
    )
    clock.advance(seconds=30)
    same = await run_cli(
        ["incident", "set", "--level", "1", "--reason", "again"],
        env_for(gateway_url, bootstrap_key, SSBG_MFA_TOKEN=totp(bootstrap_key, clock)),
    )

    assert (no_answer.exit_code, no_answer.json()["error"]["code"]) == (1, "AUTH_MFA_REQUIRED")
    assert (by_admin.exit_code, by_admin.json()["error"]["code"]) == (1, "FORBIDDEN_ROLE")
    assert from_env.exit_code == 0, from_env.stdout
    incident = from_env.json()
    assert set(incident) == INCIDENT_FIELDS
    assert (incident["level"], incident["name"], incident["reason"]) == (
        2,
        "QUARANTINE",
        "ransomware on db-7",
    )
    assert incident["changed_by"] == str(bootstrap_key.record.id)
    assert prompted.exit_code == 0, prompted.stderr
    assert "Incident level 1 (ALERT)" in prompted.stdout
    assert same.exit_code == 1
    assert same.stderr.startswith("INVALID_STATE_TRANSITION: ")
    changes = await audit_entries(services.db, "INCIDENT_LEVEL_CHANGE")
    assert [(e.details["from_level"], e.details["to_level"]) for e in changes] == [(0, 2), (2, 1)]
    assert {e.actor_id for e in changes} == {bootstrap_key.record.id}
