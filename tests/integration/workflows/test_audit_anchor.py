"""The audit anchor: a signed high-water mark of the chain kept in the key store.

Attack 4 of "The database is not trusted": someone who can write the database (not the key
store) replaces a young chain — fewer entries than the checkpoint interval, so no signed
checkpoint vouches for any of them — with fresh entries whose hashes are all correct, and moves
the head. Without the anchor, validation said valid. The chain here: bootstrap, an auditor key
and rich events, 20 entries in all, with the default interval of 1,000.
"""

from typing import Any

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.audit_chain import (
    append_until,
    chain_state,
    cli_verify,
    entry_row,
    replace_history,
    restore_chain_state,
)
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers

LENGTH = 20


@pytest.fixture
async def auditor(
    services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> IssuedApiKey:
    issued = await create_api_key(services, Role.AUDITOR)
    await append_until(services, LENGTH - 1)
    clock.advance(minutes=2)  # the next append is due to advance the anchor
    await append_until(services, LENGTH)
    return issued


async def validate_both(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The API's result, then the CLI's on the same state, and the CLI's exit code."""
    state = await chain_state(services)
    response = await client.post("/audit/validate", headers=headers(auditor))
    assert response.status_code == 200
    await restore_chain_state(services, state)  # the API recorded AUDIT_VALIDATE: take it back
    cli = await cli_verify(settings)
    return response.json()["data"], cli.json(), cli.exit_code


@pytest.mark.parametrize(
    ("replacement", "sequence", "reason"),
    [
        pytest.param(LENGTH, LENGTH, "ANCHOR_MISMATCH", id="as-long"),
        pytest.param(LENGTH + 5, LENGTH, "ANCHOR_MISMATCH", id="longer"),
        pytest.param(LENGTH - 8, LENGTH - 7, "BEHIND_ANCHOR", id="shorter"),
    ],
)
async def test_replaced_young_history_is_reported_through_api_and_cli(
    replacement: int,
    sequence: int,
    reason: str,
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    settings: Settings,
) -> None:
    await replace_history(services, replacement)

    api, cli, exit_code = await validate_both(client, auditor, services, settings)

    assert (api["valid"], api["first_invalid_sequence"], api["reason"]) == (False, sequence, reason)
    assert api["head"]["sequence"] == replacement
    assert cli == api
    assert exit_code == 1


async def test_genuine_young_chain_validates_against_its_anchor(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    api, cli, exit_code = await validate_both(client, auditor, services, settings)

    assert api["valid"] is True
    assert api["anchor"]["sequence"] == LENGTH
    assert api["anchor"]["hash"] == (await entry_row(services, LENGTH))["entry_hash"]
    assert cli == api
    assert exit_code == 0
