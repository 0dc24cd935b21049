"""A legal hold and a crypto-shred of the held backup's key version at the same moment
(SPEC §13.4), on PostgreSQL, where they really run concurrently: each waits for the other's
row lock, so whichever comes first wins and a held backup is never shredded. (SQLite runs one
writer at a time, so there the two cannot interleave at all.)"""

import asyncio
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text

from ssbg.domain.enums import BackupStatus, Role
from ssbg.domain.errors import Conflict, InvalidStateTransition
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.backups import get_record
from tests.support.clock import FixedClock
from tests.support.factories import actor, create_api_key
from tests.support.keys import rotate
from tests.support.processes import wait_until
from tests.support.restores import backup_of

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
    pytest.mark.own_key_store,
]

WAITING_ON_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def queued_behind_a_lock(services: Services, task: "asyncio.Task[object]") -> None:
    """Return once ``task`` waits for a row lock; fail if it finished without waiting."""

    async def waiting() -> bool:
        async with services.db.transaction(write=False) as tx:
            count = (await tx.session.execute(WAITING_ON_A_LOCK)).scalar_one()
        return bool(count > 0) or task.done()

    await wait_until(waiting, within=30)
    if task.done():
        pytest.fail(f"finished without waiting for the lock: {task.result()!r}")


async def test_a_hold_waits_for_a_shred_checking_its_key_version_and_is_then_refused(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = UUID(await backup_of(client, operator, b"doomed"))
    await rotate(client, clock, bootstrap_key)

    async with services.db.transaction(write=True) as shred:
        # The shred's first transaction: the version locked, no hold found, the shred begun.
        record = await shred.key_versions.get_for_update_or_none("P-001")
        assert record is not None
        assert (await shred.backups.held_under_key("P-001", 10))[1] == 0
        hold = asyncio.create_task(services.backups.place_hold(actor(admin), backup_id, "late"))
        await queued_behind_a_lock(services, hold)
        record.shred_started_at = clock.now()
        record.shred_reason = "end of retention"

    with pytest.raises(InvalidStateTransition) as refused:
        await hold
    assert refused.value.details["reason"] == "KEY_SHREDDING"
    record_after = await get_record(services, backup_id)
    assert record_after is not None
    assert not record_after.held


async def test_a_shred_waits_for_a_hold_being_placed_and_then_lists_it(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = UUID(await backup_of(client, operator, b"evidence"))
    await rotate(client, clock, bootstrap_key)

    async with services.db.transaction(write=True) as holding:
        # What placing a hold does before it commits: the backup and its version locked.
        backup = await holding.backups.get_for_update_or_none(backup_id)
        assert backup is not None
        assert await holding.key_versions.lock_shared_or_none("P-001") is not None
        backup.legal_hold_at, backup.legal_hold_by = clock.now(), admin.record.id
        backup.legal_hold_reason = "litigation hold"
        await holding.backups.flush()
        shred = asyncio.create_task(
            services.keys.crypto_shred(actor(bootstrap_key), "P-001", "DESTROY P-001", "race")
        )
        await queued_behind_a_lock(services, shred)

    with pytest.raises(Conflict) as refused:
        await shred
    assert refused.value.details["held_backups"] == [str(backup_id)]
    assert services.key_store.private_key_path("P-001").exists()
    record = await get_record(services, backup_id)
    assert record is not None
    assert (record.status, record.held) == (BackupStatus.ACTIVE, True)
