"""A long chain is validated in segments by worker processes (SQLite and PostgreSQL), through
the API and the CLI: the same result as one pass when intact, and — since a range that fails
in segments is validated again in one pass — exactly the first invalid sequence and reason
when tampered, including at a boundary between two segments.

The chain: 1,200 seeded entries with a checkpoint every 100, then the gateway's own entries;
three workers, segments of at least 300 entries: boundaries near 400 and 800.
"""

from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.audit_chain import (
    CHECKPOINTS,
    ENTRIES,
    anchor_at,
    chain_state,
    cli_verify,
    entry_row,
    execute,
    head_row,
    restore_chain_state,
    seed_chain,
    set_head,
    update_entry,
)
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers

SEEDED = 1_200
INTERVAL = 100

pytestmark = [
    # Each worker reads its segment in a snapshot of its own, as canonical text computed in SQL.
    pytest.mark.both_backends,
    pytest.mark.parametrize(
        "settings_overrides",
        [
            {
                "audit_checkpoint_interval": INTERVAL,
                "audit_validation_workers": 3,
                "audit_validation_segment_entries": 300,
            }
        ],
    ),
]


@pytest.fixture
async def bootstrap_key(services: Services, shared_key_store: FileKeyStore) -> IssuedApiKey:
    """The seeded chain first, then the gateway initialised on top of it."""
    signing_key = shared_key_store.load_private_key(AUDIT_SIGNING_NAME)
    await seed_chain(services.db.engine, SEEDED, INTERVAL, signing_key)
    result = await services.bootstrap.initialize()
    assert result.issued is not None
    return result.issued


@pytest.fixture
async def auditor(services: Services, bootstrap_key: IssuedApiKey) -> IssuedApiKey:
    return await create_api_key(services, Role.AUDITOR)


async def validate_both(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The API's result, the CLI's on the same state, and the number of segments the API's
    validation was split into, as its ``AUDIT_VALIDATE`` entry records it."""
    state = await chain_state(services)
    response = await client.post("/audit/validate", headers=headers(auditor))
    assert response.status_code == 200
    recorded = await entry_row(services, state.max_entry + 1)  # then alert M10, if it failed
    assert recorded["action"] == "AUDIT_VALIDATE"
    await restore_chain_state(services, state)  # take the API's AUDIT_VALIDATE back
    cli = await cli_verify(settings)
    return response.json()["data"], cli.json(), recorded["details"]["segments"]


async def test_an_intact_long_chain_validates_in_segments(
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    settings: Settings,
    clock: FixedClock,
) -> None:
    head, head_hash = await head_row(services)

    api, cli, segments = await validate_both(client, auditor, services, settings)

    assert api == {
        "valid": True,
        "entries_checked": head,
        "first_invalid_sequence": None,
        "reason": None,
        "head": {"sequence": head, "hash": head_hash},
        "checkpoints_verified": SEEDED // INTERVAL,
        # The bootstrap's transaction advanced the anchor to its last entry.
        "anchor": await anchor_at(services, SEEDED + 3, clock.now()),
    }
    assert cli == api
    assert segments == 3


@pytest.mark.parametrize(
    ("backend", "target"),
    [
        ("sqlite", 650),
        ("sqlite", 401),
        ("sqlite", 400),
        # Which segment reports a modified entry is decided where the segments' outcomes are
        # combined (Python, the same on both databases); one position on PostgreSQL shows its
        # workers read the entries alike (the gap and checkpoint cases below run on both).
        pytest.param("postgres", 401, marks=pytest.mark.postgres),
    ],
    indirect=["backend"],
)
async def test_a_modified_entry_is_reported_exactly_wherever_it_lies(
    target: int,
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    settings: Settings,
) -> None:
    """650: inside the second segment; 400 and 401: either side of the first boundary."""
    original = await entry_row(services, target)
    await update_entry(services, target, details={**original["details"], "n": -1})

    api, cli, segments = await validate_both(client, auditor, services, settings)

    assert (api["valid"], api["first_invalid_sequence"], api["reason"]) == (
        False,
        target,
        "HASH_MISMATCH",
    )
    assert api["entries_checked"] == target - 1
    assert cli == api
    assert segments == 3


async def test_a_deleted_entry_at_a_boundary_is_a_gap_at_its_sequence(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await execute(services, delete(ENTRIES).where(ENTRIES.c.sequence_number == 401))

    api, cli, segments = await validate_both(client, auditor, services, settings)

    assert (api["first_invalid_sequence"], api["reason"]) == (401, "SEQUENCE_GAP")
    assert cli == api
    assert segments == 3


async def test_a_cut_tail_is_beyond_the_head_not_a_gap(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    """Entries after 750 deleted and the head moved back, their checkpoints left: the segment
    that ends early sees a gap, one pass names the cut tail."""
    kept = await entry_row(services, 750)
    await execute(services, delete(ENTRIES).where(ENTRIES.c.sequence_number > 750))
    await set_head(services, 750, kept["entry_hash"])

    api, cli, segments = await validate_both(client, auditor, services, settings)

    assert (api["first_invalid_sequence"], api["reason"]) == (751, "CHECKPOINT_BEYOND_HEAD")
    assert cli == api
    assert segments == 2  # the range now ends at 750


async def test_checkpoints_deleted_across_a_boundary_are_named(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    """The checkpoint at 400 (the first segment's last) is gone: the one at 500, in the
    second segment, names it through its signed predecessor."""
    await execute(services, delete(CHECKPOINTS).where(CHECKPOINTS.c.sequence_number == 400))

    api, cli, segments = await validate_both(client, auditor, services, settings)

    assert (api["first_invalid_sequence"], api["reason"]) == (400, "CHECKPOINT_MISMATCH")
    assert cli == api
    assert segments == 3
