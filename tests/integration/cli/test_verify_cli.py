"""``ssbg backups verify ID | --all`` and ``ssbg backups release ID --reason R`` against a real
gateway over HTTP (uvicorn on a loopback port). For ``--all`` the gateway's job runner runs as
the app's lifespan would run it: woken by the route that starts the job."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pyotp
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.audit_chain import run_cli
from tests.support.backups import random_payload, upload
from tests.support.cli import env_for
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key
from tests.support.restores import backup_of
from tests.support.verification import RELEASE_REASON, flip_byte, put_back, record_of

MIB = 1024 * 1024


def totp(key: IssuedApiKey, clock: FixedClock) -> str:
    """A code of its own 30-second step (a code is accepted once)."""
    assert key.totp_secret is not None
    return pyotp.TOTP(key.totp_secret).at(clock.advance(seconds=30))


@pytest.fixture
async def job_runner(services: Services) -> AsyncIterator[None]:
    runner = asyncio.create_task(services.verification.jobs.run_periodically(3600))
    try:
        yield
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_verify_one_backup_exits_0_when_valid_and_1_when_invalid(
    gateway_url: str, client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    good = await backup_of(client, admin, random_payload(MIB))
    bad = await backup_of(client, admin, random_payload(MIB))
    await flip_byte(services, bad)
    env = env_for(gateway_url, admin)

    valid = await run_cli(["backups", "verify", good, "--json"], env)
    said = await run_cli(["backups", "verify", good], env)
    invalid = await run_cli(["backups", "verify", bad, "--json"], env)

    assert valid.exit_code == 0, valid.stdout
    assert (valid.json()["valid"], valid.json()["status"]) == (True, "ACTIVE")
    assert said.exit_code == 0
    assert "VALID" in said.stdout
    assert invalid.exit_code == 1, invalid.stdout
    assert (invalid.json()["reason"], invalid.json()["status"]) == (
        "AUTHENTICATION_FAILED",
        "QUARANTINED",
    )


async def test_verify_all_follows_the_job_to_its_end(
    gateway_url: str,
    client: httpx.AsyncClient,
    services: Services,
    clock: FixedClock,
    job_runner: None,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    ids = []
    for source_system in ("db-1", "db-2", "web-1"):
        response = await upload(
            client, admin, random_payload(MIB), mode="raw", source_system=source_system
        )
        ids.append(response.json()["data"]["backup_id"])
        clock.advance(minutes=1)
    await flip_byte(services, ids[1])
    env = env_for(gateway_url, admin)
    poll = ["--poll-seconds", "0.02"]

    everything = await run_cli(["backups", "verify", "--all", *poll, "--json"], env)
    web_only = await run_cli(
        ["backups", "verify", "--all", "--source-system", "web-*", "--status", "active", *poll],
        env,
    )

    assert everything.exit_code == 1, everything.stdout
    job = everything.json()
    assert (job["status"], job["total"], job["verified"], job["failed"]) == (
        "COMPLETED",
        3,
        3,
        1,
    )
    assert web_only.exit_code == 0, web_only.stdout + web_only.stderr
    assert "1 of 1 verified" in web_only.stdout
    assert len(await audit_entries(services.db, "VERIFY_JOB_COMPLETE")) == 2


async def test_release_needs_a_fresh_valid_verification_and_a_totp_code(
    gateway_url: str, client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, random_payload(MIB))
    original = await flip_byte(services, backup_id)
    env = env_for(gateway_url, admin)
    args = ["backups", "release", backup_id, "--reason", RELEASE_REASON, "--json"]

    quarantined = await run_cli(["backups", "verify", backup_id, "--json"], env)
    too_early = await run_cli(args, env_for(gateway_url, admin, SSBG_MFA_TOKEN=totp(admin, clock)))
    await put_back(services, backup_id, original)
    clock.advance(minutes=1)
    verified = await run_cli(["backups", "verify", backup_id, "--json"], env)
    without_code = await run_cli(args, env, stdin="")
    prompted = await run_cli(args, env, stdin=totp(admin, clock))

    assert quarantined.json()["status"] == "QUARANTINED"
    assert too_early.exit_code == 1
    assert too_early.json()["error"]["code"] == "CONFLICT"
    assert too_early.json()["error"]["details"]["reason"] == "VERIFICATION_REQUIRED"
    assert (verified.exit_code, verified.json()["status"]) == (0, "QUARANTINED")
    assert (without_code.exit_code, without_code.json()["error"]["code"]) == (
        1,
        "AUTH_MFA_REQUIRED",
    )
    assert prompted.exit_code == 0, prompted.stdout
    assert prompted.json()["status"] == "ACTIVE"
    assert (await record_of(services, backup_id)).status.value == "ACTIVE"


@pytest.mark.parametrize(
    "args",
    [
        ["backups", "verify"],
        ["backups", "verify", "00000000-0000-4000-8000-000000000000", "--all"],
        ["backups", "verify", "00000000-0000-4000-8000-000000000000", "--source-system", "db-*"],
    ],
)
async def test_verify_usage_errors_ask_nothing_of_the_gateway(
    gateway_url: str, services: Services, args: list[str]
) -> None:
    admin = await create_api_key(services, Role.ADMIN)

    outcome = await run_cli([*args, "--json"], env_for(gateway_url, admin))

    assert (outcome.exit_code, outcome.json()["error"]["code"]) == (2, "USAGE")
    assert await audit_entries(services.db, "BACKUP_VERIFY") == []
