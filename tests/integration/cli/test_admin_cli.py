"""The admin client commands against a real gateway over HTTP (uvicorn on a loopback port):
``ssbg api-keys create|list|show|revoke`` and ``ssbg policies create|list|show|update``.

Every key a test creates through the command is then used against the API, so "created" means
"works"; every refusal is checked for its contract code and exit status, and for what it did not
change.
"""

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.audit_chain import CliOutcome, run_cli
from tests.support.cli import env_for, fresh_code
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key

KEY_FIELDS = {
    "key_id",
    "role",
    "status",
    "description",
    "department",
    "allowed_ips",
    "expires_at",
    "created_at",
    "created_by",
    "revoked_at",
    "revoked_by",
    "last_used_at",
    "last_used_ip",
    "mfa_enrolled",
}
SECRET_FIELDS = {"api_key", "totp_secret", "totp_uri"}
POLICY_FIELDS = {
    "policy_id",
    "name",
    "description",
    "effect",
    "priority",
    "is_active",
    "rule",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
}
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def api(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{gateway_url}/api/v1") as http:
        yield http


async def me(api: httpx.AsyncClient, api_key: str) -> httpx.Response:
    return await api.get("/me", headers={"X-API-Key": api_key})


def error_code(outcome: CliOutcome) -> str:
    code: str = outcome.json()["error"]["code"]
    return code


# -- api-keys ---------------------------------------------------------------------------------


@pytest.mark.both_backends
async def test_each_role_is_created_its_secrets_shown_once_and_the_key_works(
    gateway_url: str,
    api: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    created: dict[Role, dict[str, Any]] = {}
    for role in Role:
        mfa = fresh_code(bootstrap_key, clock) if role is Role.SUPER_ADMIN else ""
        outcome = await run_cli(
            [
                "api-keys",
                "create",
                "--role",
                role.value,
                "--description",
                f"{role} of ops",
                "--json",
            ],
            env_for(gateway_url, bootstrap_key, SSBG_MFA_TOKEN=mfa),
        )
        assert outcome.exit_code == 0, outcome.stdout
        created[role] = outcome.json()
    env = env_for(gateway_url, bootstrap_key)
    listed = await run_cli(["api-keys", "list", "--json"], env)
    table = await run_cli(["api-keys", "list"], env)
    shown = {
        role: await run_cli(["api-keys", "show", key["key_id"], "--json"], env)
        for role, key in created.items()
    }
    text = await run_cli(["api-keys", "show", created[Role.ADMIN]["key_id"]], env)

    for role, key in created.items():
        assert set(key) == KEY_FIELDS | SECRET_FIELDS
        assert (key["role"], key["status"]) == (role.value, "ACTIVE")
        assert key["created_by"] == str(bootstrap_key.record.id)
        assert key["api_key"].startswith("ssbg_")
        has_totp = role in (Role.ADMIN, Role.SUPER_ADMIN)
        assert (key["totp_secret"] is not None, key["mfa_enrolled"]) == (has_totp, has_totp)
        assert (key["totp_uri"] or "otpauth://").startswith("otpauth://")
        answer = await me(api, key["api_key"])
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["role"] == role.value
        assert shown[role].exit_code == 0
        assert shown[role].json() == {name: key[name] for name in KEY_FIELDS}
    assert listed.exit_code == 0
    by_id = {key["key_id"]: key for key in listed.json()}
    assert set(by_id) == {str(bootstrap_key.record.id)} | {k["key_id"] for k in created.values()}
    assert all(set(key) == KEY_FIELDS for key in by_id.values())
    # Neither list nor show ever prints a secret, in JSON or as text.
    secrets = [k[name] for k in created.values() for name in SECRET_FIELDS if k[name]]
    later = [listed.stdout, table.stdout, text.stdout, *(o.stdout for o in shown.values())]
    assert not [s for s in secrets if any(s in output for output in later)]
    assert all(k["key_id"] in table.stdout for k in created.values())
    assert "super_admin of ops" in table.stdout
    assert "mfa_enrolled" in text.stdout
    creations = await audit_entries(services.db, "API_KEY_CREATE")
    assert [e.details["role"] for e in creations[1:]] == [role.value for role in Role]


async def test_create_prints_the_secrets_once_with_a_warning_and_keeps_the_restrictions(
    gateway_url: str, api: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    expires = (clock.now() + timedelta(days=90)).isoformat().replace("+00:00", "Z")
    admin = await run_cli(
        ["api-keys", "create", "--role", "ADMIN", "--description", "restores for Eve"],
        env_for(gateway_url, bootstrap_key),
    )
    operator = await run_cli(
        [
            "api-keys",
            "create",
            "--role",
            "operator",
            "--description",
            "nightly pg_dump",
            "--department",
            "finance",
            "--expires-at",
            expires,
            "--allowed-ip",
            "127.0.0.1",
            "--allowed-ip",
            "10.20.0.0/16",
            "--json",
        ],
        env_for(gateway_url, bootstrap_key),
    )

    assert admin.exit_code == 0, admin.stderr
    lines = admin.stdout.splitlines()
    assert "New admin API key (restores for Eve) — shown once:" in lines
    values = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in lines
        if line.startswith("  ")
    }
    assert set(values) == {"API key", "key id", "TOTP secret", "TOTP URI"}
    assert values["TOTP URI"].startswith("otpauth://totp/")
    assert "Store it now: it is not shown again" in admin.stdout
    assert (await me(api, values["API key"])).json()["data"]["key_id"] == values["key id"]
    assert operator.exit_code == 0, operator.stdout
    key = operator.json()
    assert (key["department"], key["expires_at"]) == ("finance", expires)
    assert key["allowed_ips"] == ["127.0.0.1", "10.20.0.0/16"]
    assert (key["totp_secret"], key["totp_uri"]) == (None, None)
    assert (await me(api, key["api_key"])).status_code == 200  # from 127.0.0.1: allowed


async def test_a_super_admin_key_needs_the_issuers_totp_code(
    gateway_url: str, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    args = ["api-keys", "create", "--role", "super_admin", "--description", "second admin"]
    env = env_for(gateway_url, bootstrap_key)

    no_answer = await run_cli([*args, "--json"], env, stdin="")
    wrong = await run_cli([*args, "--json"], {**env, "SSBG_MFA_TOKEN": "000000"})
    prompted = await run_cli(args, env, stdin=fresh_code(bootstrap_key, clock) + "\n")

    assert (no_answer.exit_code, error_code(no_answer)) == (1, "AUTH_MFA_REQUIRED")
    assert (wrong.exit_code, error_code(wrong)) == (1, "AUTH_MFA_INVALID")
    assert prompted.exit_code == 0, prompted.stderr
    assert "TOTP code from your authenticator" in prompted.stderr
    assert "New super_admin API key (second admin) — shown once:" in prompted.stdout
    creations = await audit_entries(services.db, "API_KEY_CREATE")
    assert [e.details["description"] for e in creations] == [
        "bootstrap super_admin",
        "second admin",
    ]


async def test_revoke_asks_first_then_the_key_fails_with_401(
    gateway_url: str, api: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    operator = await create_api_key(services, Role.OPERATOR, description="old backup job")
    auditor = await create_api_key(services, Role.AUDITOR)
    env = env_for(gateway_url, bootstrap_key)
    key_id = str(operator.record.id)

    declined = await run_cli(["api-keys", "revoke", key_id], env, stdin="n\n")
    still_works = await me(api, operator.api_key)
    confirmed = await run_cli(
        ["api-keys", "revoke", key_id, "--reason", "job retired"], env, stdin="y\n"
    )
    refused = await me(api, operator.api_key)
    again = await run_cli(["api-keys", "revoke", key_id, "--yes", "--json"], env)
    at_once = await run_cli(["api-keys", "revoke", str(auditor.record.id), "-y", "--json"], env)
    shown = await run_cli(["api-keys", "show", key_id, "--json"], env)

    assert declined.exit_code == 1
    assert f"Revoke API key {key_id} (operator, old backup job, ACTIVE)?" in declined.stderr
    assert "Nothing was revoked." in declined.stderr
    assert still_works.status_code == 200
    assert confirmed.exit_code == 0, confirmed.stderr
    assert f"API key {key_id} (operator, old backup job) is REVOKED since" in confirmed.stdout
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "AUTH_INVALID_KEY"
    assert (again.exit_code, error_code(again)) == (1, "INVALID_STATE_TRANSITION")
    assert at_once.exit_code == 0
    assert (at_once.json()["status"], at_once.json()["revoked_by"]) == (
        "REVOKED",
        str(bootstrap_key.record.id),
    )
    assert (await me(api, auditor.api_key)).status_code == 401
    assert shown.json()["status"] == "REVOKED"
    revocations = await audit_entries(services.db, "API_KEY_REVOKE")
    assert [(e.resource, e.details["reason"]) for e in revocations] == [
        (f"api_key:{key_id}", "job retired"),
        (f"api_key:{auditor.record.id}", None),
    ]


async def test_a_caller_who_is_not_super_admin_gets_a_clear_403(
    gateway_url: str, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    env = env_for(gateway_url, admin)

    listed = await run_cli(["api-keys", "list"], env)
    created = await run_cli(
        ["api-keys", "create", "--role", "operator", "--description", "sneaky", "--json"], env
    )
    revoked = await run_cli(["api-keys", "revoke", str(bootstrap_key.record.id), "--yes"], env)
    unknown = await run_cli(["api-keys", "show", UNKNOWN_ID], env_for(gateway_url, bootstrap_key))
    no_key = await run_cli(["api-keys", "list", "--json"], {"SSBG_API_KEY": ""})

    assert listed.exit_code == 1
    assert listed.stderr.startswith("FORBIDDEN_ROLE: ")
    assert "This command needs a super_admin key." in listed.stderr
    assert (created.exit_code, error_code(created)) == (1, "FORBIDDEN_ROLE")
    assert revoked.exit_code == 1
    assert revoked.stderr.startswith("FORBIDDEN_ROLE: ")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("NOT_FOUND: ")
    assert (no_key.exit_code, error_code(no_key)) == (2, "USAGE")
    descriptions = [
        e.details["description"] for e in await audit_entries(services.db, "API_KEY_CREATE")
    ]
    assert "sneaky" not in descriptions
    assert await audit_entries(services.db, "API_KEY_REVOKE") == []


# -- policies ---------------------------------------------------------------------------------


@pytest.mark.both_backends
async def test_a_policy_round_trips_through_create_list_show_and_update(
    gateway_url: str, services: Services, tmp_path: Path
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    env = env_for(gateway_url, admin)

    created = await run_cli(
        [
            "policies",
            "create",
            "--name",
            "finance-office-hours",
            "--effect",
            "deny",
            "--priority",
            "10",
            "--operation",
            "restore",
            "--source-system",
            "finance-*",
            "--classification",
            "confidential",
            "--classification",
            "SECRET",
            "--hours",
            "18-24",
            "--description",
            "no restores at night",
            "--json",
        ],
        env,
    )
    assert created.exit_code == 0, created.stdout
    policy = created.json()
    policy_id = policy["policy_id"]
    listed = await run_cli(["policies", "list", "--json"], env)
    table = await run_cli(["policies", "list"], env)
    shown = await run_cli(["policies", "show", policy_id, "--json"], env)
    hours = await run_cli(
        ["policies", "update", policy_id, "--hours", "00-06", "--priority", "5", "--json"], env
    )
    inactive = await run_cli(["policies", "update", policy_id, "--inactive"], env)
    body = tmp_path / "policy.json"
    body.write_text(json.dumps({"effect": "require_mfa", "rule": {"roles": ["admin"]}}))
    replaced = await run_cli(["policies", "update", policy_id, "--from-file", str(body)], env)
    final = await run_cli(["policies", "show", policy_id, "--json"], env)

    assert set(policy) == POLICY_FIELDS
    assert (policy["name"], policy["effect"], policy["priority"]) == (
        "finance-office-hours",
        "deny",
        10,
    )
    assert policy["is_active"] is True
    assert policy["description"] == "no restores at night"
    assert policy["rule"] == {
        "operations": ["restore"],
        "classifications": ["CONFIDENTIAL", "SECRET"],
        "source_systems": ["finance-*"],
        "hours": "18-24",
    }
    assert policy["created_by"] == str(admin.record.id)
    assert listed.json() == [policy]
    assert table.exit_code == 0
    assert policy_id in table.stdout
    assert (
        "classifications: CONFIDENTIAL,SECRET; source_systems: finance-*; hours: 18-24"
        in table.stdout
    )
    assert shown.json() == policy
    assert hours.exit_code == 0, hours.stdout
    changed = hours.json()
    assert changed["priority"] == 5
    # A rule option changes that part of the rule; the rest is kept.
    assert changed["rule"] == {**policy["rule"], "hours": "00-06"}
    assert inactive.exit_code == 0, inactive.stdout
    assert f"Updated policy {policy_id} (finance-office-hours)." in inactive.stdout
    assert replaced.exit_code == 0, replaced.stdout
    # A body from a file is the PATCH body as it is: its rule replaces the whole rule.
    assert {k: final.json()[k] for k in ("effect", "is_active", "priority", "rule")} == {
        "effect": "require_mfa",
        "is_active": False,
        "priority": 5,
        "rule": {"roles": ["admin"]},
    }
    assert len(await audit_entries(services.db, "POLICY_CREATE")) == 1
    assert len(await audit_entries(services.db, "POLICY_UPDATE")) == 3


async def test_policy_refusals_show_the_gateways_code_and_change_nothing(
    gateway_url: str, services: Services, tmp_path: Path
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    operator = await create_api_key(services, Role.OPERATOR)
    env = env_for(gateway_url, admin)
    first = await run_cli(
        [
            "policies",
            "create",
            "--name",
            "no-deletes",
            "--effect",
            "deny",
            "--operation",
            "delete",
            "--json",
        ],
        env,
    )
    policy_id = first.json()["policy_id"]
    not_json = tmp_path / "policy.json"
    not_json.write_text("{not json")

    bad_hours = await run_cli(
        ["policies", "create", "--name", "late", "--effect", "deny", "--hours", "25-30", "--json"],
        env,
    )
    bad_name = await run_cli(["policies", "create", "--name", "a/b", "--effect", "deny"], env)
    taken = await run_cli(
        ["policies", "create", "--name", "no-deletes", "--effect", "require_mfa", "--json"], env
    )
    other = await run_cli(
        ["policies", "create", "--name", "other", "--effect", "deny", "--json"], env
    )
    clash = await run_cli(
        ["policies", "update", other.json()["policy_id"], "--name", "no-deletes"], env
    )
    no_effect = await run_cli(["policies", "create", "--name", "x"], env)
    both = await run_cli(["policies", "create", "--name", "x", "--from-file", str(not_json)], env)
    unreadable = await run_cli(["policies", "create", "--from-file", str(not_json)], env)
    nothing = await run_cli(["policies", "update", policy_id], env)
    unknown = await run_cli(["policies", "update", UNKNOWN_ID, "--priority", "1", "--json"], env)
    by_operator = await run_cli(["policies", "list"], env_for(gateway_url, operator))
    still = await run_cli(["policies", "show", policy_id, "--json"], env)

    assert first.exit_code == 0, first.stdout
    assert (bad_hours.exit_code, error_code(bad_hours)) == (1, "VALIDATION_ERROR")
    assert "rule.hours" in json.dumps(bad_hours.json()["error"]["details"])
    assert bad_name.exit_code == 1
    assert bad_name.stderr.startswith("VALIDATION_ERROR: ")
    assert "details:" in bad_name.stderr
    assert (taken.exit_code, error_code(taken)) == (1, "CONFLICT")
    assert other.exit_code == 0
    assert clash.exit_code == 1
    assert clash.stderr.startswith("CONFLICT: ")
    for usage in (no_effect, both, unreadable, nothing):
        assert usage.exit_code == 2, usage.stderr
    assert "--name and --effect" in no_effect.stderr
    assert "--from-file is the whole body: leave out --name" in both.stderr
    assert "is not JSON" in unreadable.stderr
    assert "Nothing to change" in nothing.stderr
    assert (unknown.exit_code, error_code(unknown)) == (1, "NOT_FOUND")
    assert by_operator.exit_code == 1
    assert by_operator.stderr.startswith("FORBIDDEN_ROLE: ")
    assert "This command needs an admin (or super_admin) key." in by_operator.stderr
    assert still.json() == first.json()
    assert len(await audit_entries(services.db, "POLICY_CREATE")) == 2
    assert await audit_entries(services.db, "POLICY_UPDATE") == []
