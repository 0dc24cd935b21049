"""``ssbg audit verify`` against the configured database: ranges, usage and connection errors."""

import socket

import pytest

from ssbg.domain.queries import AuditEntryFilters
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.audit_chain import append_until, cli_env, run_cli


@pytest.mark.both_backends
async def test_verify_a_range_of_the_configured_database(
    services: Services, settings: Settings, bootstrap_key: IssuedApiKey
) -> None:
    await append_until(services, 9)

    outcome = await run_cli(
        ["audit", "verify", "--from-sequence", "4", "--to-sequence", "7", "--json"],
        cli_env(settings),
    )

    assert outcome.exit_code == 0
    assert outcome.json()["valid"] is True
    assert outcome.json()["entries_checked"] == 4


@pytest.mark.both_backends
async def test_verify_records_its_validation_in_the_chain(
    services: Services, settings: Settings, bootstrap_key: IssuedApiKey
) -> None:
    before = (await services.audit.head()).sequence_number

    outcome = await run_cli(["audit", "verify"], cli_env(settings))

    async with services.db.transaction(write=False) as tx:
        entries = await tx.audit.list_entries(AuditEntryFilters(action="AUDIT_VALIDATE"), 0, 10)
    assert outcome.exit_code == 0
    assert "VALID" in outcome.stdout
    assert [e.sequence_number for e in entries] == [before + 1]
    assert entries[0].actor_id is None
    assert entries[0].details["via"] == "cli"


async def test_unreachable_database_exits_2(settings: Settings) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    env = {**cli_env(settings), "SSBG_DATABASE_URL": f"postgresql+asyncpg://x@127.0.0.1:{port}/x"}

    outcome = await run_cli(["audit", "verify", "--json"], env)

    assert outcome.exit_code == 2
    assert outcome.json()["error"]["code"] == "DATABASE_UNAVAILABLE"


async def test_trusted_key_without_a_bundle_is_a_usage_error(settings: Settings) -> None:
    outcome = await run_cli(
        ["audit", "verify", "--trusted-key", "key.pem", "--json"], cli_env(settings)
    )

    assert outcome.exit_code == 2
    assert outcome.json()["error"]["code"] == "USAGE"
