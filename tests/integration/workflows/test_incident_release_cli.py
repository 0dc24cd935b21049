"""``ssbg incident release`` on the gateway host: the only way out of level 3 (LOCKDOWN).

It runs as an operator runs it (a subprocess with the gateway's ``SSBG_`` configuration) and
must open the key store with the key password before it writes anything.
"""

import json
from subprocess import CompletedProcess

import pytest

from ssbg.domain.incident import IncidentLevel
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit import assert_chain_valid, audit_entries, head_sequence
from tests.support.audit_chain import cli_env, cli_verify, run_cli
from tests.support.cli import run_ssbg
from tests.support.restores import set_incident_level

REASON = "forensics done, ticket SEC-42"


def host_env(settings: Settings, **extra: str) -> dict[str, str]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the command's working folder
    return {**cli_env(settings), "SSBG_LOG_LEVEL": "WARNING", **extra}


def release(settings: Settings, level: int, **extra: str) -> CompletedProcess[str]:
    return run_ssbg(
        "incident",
        "release",
        "--level",
        str(level),
        "--reason",
        REASON,
        "--json",
        env=host_env(settings, **extra),
    )


async def host_changes(services: Services) -> list[dict[str, object]]:
    return [
        dict(e.details)
        for e in await audit_entries(services.db, "INCIDENT_LEVEL_CHANGE")
        if e.actor_role == "cli"
    ]


@pytest.mark.both_backends
async def test_release_with_the_key_password_lifts_a_lockdown_audited_as_cli(
    services: Services, settings: Settings, bootstrap_key: IssuedApiKey
) -> None:
    await set_incident_level(services, bootstrap_key, IncidentLevel.LOCKDOWN)

    released = release(settings, 0)

    assert released.returncode == 0, released.stderr
    result = json.loads(released.stdout)
    assert (result["level"], result["name"], result["reason"]) == (0, "NORMAL", REASON)
    assert result["changed_at"].endswith("Z")
    assert (await services.incidents.get_status()).level == IncidentLevel.NORMAL
    entry = (await audit_entries(services.db, "INCIDENT_LEVEL_CHANGE"))[-1]
    assert (entry.actor_id, entry.actor_role, entry.resource) == (None, "cli", "incident")
    assert entry.details == {
        "from_level": 3,
        "to_level": 0,
        "reason": REASON,
        "actor_id": None,
        "alert_id": None,
        "via": "cli",
    }
    await assert_chain_valid(services.db)
    verified = await cli_verify(settings)  # links, checkpoints and the audit anchor
    assert (verified.exit_code, verified.json()["valid"]) == (0, True)


async def test_a_wrong_key_password_is_refused_and_changes_nothing(
    services: Services, settings: Settings, bootstrap_key: IssuedApiKey
) -> None:
    await set_incident_level(services, bootstrap_key, IncidentLevel.LOCKDOWN)
    head = await head_sequence(services.db)
    key_files = sorted(p.name for p in settings.resolved_keystore_dir.iterdir())

    refused = release(settings, 0, SSBG_KEY_PASSWORD="not-the-key-password")

    assert refused.returncode == 1
    assert "the key password does not open the key store" in refused.stderr
    assert "Nothing was changed" in refused.stderr
    assert refused.stdout == ""
    assert (await services.incidents.get_status()).level == IncidentLevel.LOCKDOWN
    assert await head_sequence(services.db) == head
    assert await host_changes(services) == []
    assert sorted(p.name for p in settings.resolved_keystore_dir.iterdir()) == key_files


@pytest.mark.both_backends
async def test_a_release_must_lower_the_level(
    services: Services, settings: Settings, bootstrap_key: IssuedApiKey
) -> None:
    normal = release(settings, 0)
    await set_incident_level(services, bootstrap_key, IncidentLevel.QUARANTINE)
    same = release(settings, 2)
    out_of_range = release(settings, 3)

    assert normal.returncode == 1
    assert "INVALID_STATE_TRANSITION" in normal.stderr
    assert "it is 0" in normal.stderr
    assert same.returncode == 1
    assert "INVALID_STATE_TRANSITION" in same.stderr
    assert out_of_range.returncode == 2  # --level is 0, 1 or 2
    assert (await services.incidents.get_status()).level == IncidentLevel.QUARANTINE
    assert await host_changes(services) == []


async def test_without_a_configured_password_it_is_asked_for(
    services: Services, settings: Settings, bootstrap_key: IssuedApiKey
) -> None:
    await set_incident_level(services, bootstrap_key, IncidentLevel.LOCKDOWN)
    env = {**host_env(settings), "SSBG_KEY_PASSWORD": ""}
    args = ["incident", "release", "--level", "2", "--reason", REASON, "--json"]

    no_terminal = await run_cli(args, env, stdin="")
    wrong = await run_cli(args, env, stdin="a guess\n")
    right = await run_cli(args, env, stdin=f"{TEST_KEY_PASSWORD}\n")

    assert no_terminal.exit_code == 2
    assert "SSBG_KEY_PASSWORD" in no_terminal.stderr
    assert wrong.exit_code == 1
    assert right.exit_code == 0, right.stderr
    assert right.json()["level"] == 2
    assert TEST_KEY_PASSWORD not in right.stdout + right.stderr
    assert [(c["from_level"], c["to_level"]) for c in await host_changes(services)] == [(3, 2)]
