"""An attacker with write access to the database changes the audit log; validation through the
API and through ``ssbg audit verify`` must both name the first invalid sequence and the reason.

The chain: 45 entries (bootstrap, an auditor key, then rich events), a signed checkpoint every
10 entries (10, 20, 30, 40). Each test tampers directly in the tables, then asks both.
"""

from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import delete, insert, update

from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.audit_chain import (
    CHECKPOINTS,
    ENTRIES,
    anchor_at,
    append_until,
    cli_verify,
    entry_row,
    execute,
    head_row,
    insert_forged_entry,
    rewrite_chain_after,
    set_head,
    shift_entries_up,
    sign_checkpoint,
    swap_entries,
    update_entry,
    validate_both,
)
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers

# Validation reads canonical text (UUIDs, timestamps, JSON) computed in SQL, differently per
# dialect; tampering goes through each column type.
pytestmark = pytest.mark.both_backends

INTERVAL = 10
LENGTH = 45
TARGET = 17  # an ordinary entry between the checkpoints at 10 and 20


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"audit_checkpoint_interval": INTERVAL})


@pytest.fixture
async def auditor(services: Services, bootstrap_key: IssuedApiKey) -> IssuedApiKey:
    issued = await create_api_key(services, Role.AUDITOR)
    await append_until(services, LENGTH)
    return issued


async def assert_reported(
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    settings: Settings,
    sequence: int,
    reason: str,
) -> None:
    api, cli, exit_code = await validate_both(client, auditor, services, settings)
    assert (api["valid"], api["first_invalid_sequence"], api["reason"]) == (False, sequence, reason)
    assert cli == api
    assert exit_code == 1


async def test_untouched_chain_is_valid_through_api_and_cli(
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    settings: Settings,
    clock: FixedClock,
) -> None:
    api, cli, exit_code = await validate_both(client, auditor, services, settings)

    assert api == {
        "valid": True,
        "entries_checked": LENGTH,
        "first_invalid_sequence": None,
        "reason": None,
        "head": {"sequence": LENGTH, "hash": (await entry_row(services, LENGTH))["entry_hash"]},
        "checkpoints_verified": 4,
        # The entries after the bootstrap were appended in one transaction: the anchor advanced
        # at its checkpoints, to its last entry.
        "anchor": await anchor_at(services, LENGTH, clock.now()),
    }
    assert cli == api
    assert exit_code == 0


def _changed(column: str, original: dict[str, Any]) -> Any:
    return {
        "event_id": uuid4(),
        "occurred_at": original["occurred_at"] + timedelta(microseconds=1),
        "actor_id": uuid4(),
        "actor_role": "auditor",
        "action": "BACKUP_DELETE",
        "resource": f"backup:{uuid4()}",
        "result": "DENIED",
        "details": {**original["details"], "n": 999},
        "source_ip": "203.0.113.9",
        "request_id": "req-forged",
        "incident_level": 3,
        "prev_hash": "0" * 128,
        "entry_hash": "0" * 128,
        "sequence_number": 1000,
    }[column]


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        ("event_id", "HASH_MISMATCH"),
        ("occurred_at", "HASH_MISMATCH"),
        ("actor_id", "HASH_MISMATCH"),
        ("actor_role", "HASH_MISMATCH"),
        ("action", "HASH_MISMATCH"),
        ("resource", "HASH_MISMATCH"),
        ("result", "HASH_MISMATCH"),
        ("details", "HASH_MISMATCH"),
        ("source_ip", "HASH_MISMATCH"),
        ("request_id", "HASH_MISMATCH"),
        ("incident_level", "HASH_MISMATCH"),
        ("entry_hash", "HASH_MISMATCH"),
        ("prev_hash", "LINK_BROKEN"),
        ("sequence_number", "SEQUENCE_GAP"),
    ],
)
async def test_modified_column_of_an_entry_is_reported_at_that_entry(
    column: str,
    reason: str,
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    settings: Settings,
) -> None:
    original = await entry_row(services, TARGET)
    await update_entry(services, TARGET, **{column: _changed(column, original)})

    await assert_reported(client, auditor, services, settings, TARGET, reason)


async def test_floating_point_number_in_details_is_a_hash_mismatch(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await update_entry(services, TARGET, details={"n": 1.5})

    await assert_reported(client, auditor, services, settings, TARGET, "HASH_MISMATCH")


async def test_deleted_entry_in_the_middle_is_a_sequence_gap(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await execute(services, delete(ENTRIES).where(ENTRIES.c.sequence_number == TARGET))

    await assert_reported(client, auditor, services, settings, TARGET, "SEQUENCE_GAP")


async def test_forged_entry_inserted_in_the_middle_breaks_the_next_link(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    # Entries from TARGET on move up one; the forgery takes TARGET, linked and hashed right;
    # the head row follows the longer chain.
    await shift_entries_up(services, TARGET)
    previous = await entry_row(services, TARGET - 1)
    await insert_forged_entry(services, TARGET, previous["entry_hash"])
    await set_head(services, LENGTH + 1, (await entry_row(services, LENGTH + 1))["entry_hash"])

    await assert_reported(client, auditor, services, settings, TARGET + 1, "LINK_BROKEN")


async def test_forged_entry_appended_behind_the_head_is_reported_though_it_blocks_appends(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await insert_forged_entry(services, LENGTH + 1, (await head_row(services))[1])

    response = await client.post("/audit/validate", headers=headers(auditor))
    cli = await cli_verify(settings)

    # The planted row takes the sequence the next append needs: AUDIT_VALIDATE cannot be
    # recorded, so the request fails closed — and still hands the finding over.
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "DATABASE_UNAVAILABLE"
    api = error["details"]["validation"]
    assert (api["valid"], api["first_invalid_sequence"], api["reason"]) == (
        False,
        LENGTH + 1,
        "SEQUENCE_GAP",
    )
    assert (cli.exit_code, cli.json()) == (1, api)


async def test_two_swapped_entries_break_the_link_at_the_first(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await swap_entries(services, TARGET, TARGET + 1)

    await assert_reported(client, auditor, services, settings, TARGET, "LINK_BROKEN")


async def test_chain_rewritten_with_recomputed_hashes_fails_on_the_next_checkpoint(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await rewrite_chain_after(services, TARGET)

    await assert_reported(client, auditor, services, settings, 20, "CHECKPOINT_MISMATCH")


async def test_rewritten_chain_with_its_checkpoints_deleted_fails_where_one_was_due(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await rewrite_chain_after(services, TARGET)
    await execute(services, delete(CHECKPOINTS).where(CHECKPOINTS.c.sequence_number > TARGET))

    await assert_reported(client, auditor, services, settings, 20, "CHECKPOINT_MISMATCH")


async def test_deleted_checkpoint_in_the_middle_is_named_by_its_successor(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await execute(services, delete(CHECKPOINTS).where(CHECKPOINTS.c.sequence_number == 20))

    await assert_reported(client, auditor, services, settings, 20, "CHECKPOINT_MISMATCH")


@pytest.mark.parametrize("head_moved_too", [True, False])
async def test_tail_truncated_before_the_last_checkpoint(
    head_moved_too: bool,
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    settings: Settings,
) -> None:
    await execute(services, delete(ENTRIES).where(ENTRIES.c.sequence_number > 35))
    if head_moved_too:
        await set_head(services, 35, (await entry_row(services, 35))["entry_hash"])

    await assert_reported(client, auditor, services, settings, 36, "CHECKPOINT_BEYOND_HEAD")


async def test_tail_truncated_after_the_last_checkpoint_is_caught_by_the_head_row(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await execute(services, delete(ENTRIES).where(ENTRIES.c.sequence_number > 42))

    await assert_reported(client, auditor, services, settings, 43, "SEQUENCE_GAP")


async def test_head_row_with_another_hash_is_a_hash_mismatch_at_the_last_entry(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await set_head(services, LENGTH, "f" * 128)

    await assert_reported(client, auditor, services, settings, LENGTH, "HASH_MISMATCH")


async def test_altered_checkpoint_signature_is_reported_at_the_checkpoint(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    # A different, well-formed signature: the one of checkpoint 30 on checkpoint 20.
    async with services.db.engine.connect() as connection:
        from sqlalchemy import select

        other = (
            await connection.execute(
                select(CHECKPOINTS.c.signature).where(CHECKPOINTS.c.sequence_number == 30)
            )
        ).scalar_one()
    await execute(
        services,
        update(CHECKPOINTS).where(CHECKPOINTS.c.sequence_number == 20).values(signature=other),
    )

    await assert_reported(client, auditor, services, settings, 20, "CHECKPOINT_SIGNATURE_INVALID")


async def test_checkpoint_with_a_changed_hash_fails_its_signature(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await execute(
        services,
        update(CHECKPOINTS).where(CHECKPOINTS.c.sequence_number == 20).values(entry_hash="a" * 128),
    )

    await assert_reported(client, auditor, services, settings, 20, "CHECKPOINT_SIGNATURE_INVALID")


async def test_checkpoint_signed_by_another_key_is_invalid(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    row = await entry_row(services, 20)
    forged = sign_checkpoint(
        ec.generate_private_key(ec.SECP384R1()),
        sequence_number=20,
        entry_hash=row["entry_hash"],
        previous=10,
        interval=INTERVAL,
    )
    await execute(
        services,
        delete(CHECKPOINTS).where(CHECKPOINTS.c.sequence_number == 20),
        insert(CHECKPOINTS).values(**{**forged, "created_at": row["occurred_at"]}),
    )

    await assert_reported(client, auditor, services, settings, 20, "CHECKPOINT_SIGNATURE_INVALID")


async def test_validly_signed_checkpoint_past_the_head_is_beyond_head(
    client: httpx.AsyncClient,
    auditor: IssuedApiKey,
    services: Services,
    settings: Settings,
    shared_key_store: FileKeyStore,
) -> None:
    # As if the entries had been rolled back to an older copy while the checkpoints stayed.
    checkpoint = sign_checkpoint(
        shared_key_store.load_private_key(AUDIT_SIGNING_NAME),
        sequence_number=LENGTH + 5,
        entry_hash="b" * 128,
        previous=40,
        interval=INTERVAL,
    )
    row = await entry_row(services, LENGTH)
    await execute(
        services, insert(CHECKPOINTS).values(**{**checkpoint, "created_at": row["occurred_at"]})
    )

    await assert_reported(client, auditor, services, settings, LENGTH + 1, "CHECKPOINT_BEYOND_HEAD")


async def test_checkpoint_moved_past_the_head_is_beyond_head(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> None:
    await execute(
        services,
        update(CHECKPOINTS)
        .where(CHECKPOINTS.c.sequence_number == 40)
        .values(sequence_number=LENGTH + 10),
    )

    await assert_reported(client, auditor, services, settings, LENGTH + 1, "CHECKPOINT_BEYOND_HEAD")
