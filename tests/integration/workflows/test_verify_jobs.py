"""Verify jobs (``POST /admin/verify``, SPEC §13.4): a selection verified oldest first with
progress, resumable from its cursor by another replica once the lease of the one working on
it lapsed, and fenced so a replica that lost its lease records nothing more. The tests drive
the runner batch by batch (``VerifyJobs.claim`` / ``run_batch`` / ``sweep_once``)."""

from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from ssbg.domain.enums import BackupStatus, Role
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.services.verification.jobs import LeaseLost
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.backups import upload
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.verification import flip_byte, record_of, verify

pytestmark = pytest.mark.both_backends


async def make_backups(
    client: httpx.AsyncClient,
    owner: IssuedApiKey,
    clock: FixedClock,
    specs: list[tuple[str, str]],
) -> list[str]:
    """One small backup per ``(source_system, classification)``, a minute apart."""
    ids = []
    for source_system, classification in specs:
        response = await upload(
            client,
            owner,
            f"{source_system} at {clock.now()}".encode(),
            mode="raw",
            source_system=source_system,
            classification=classification,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["data"]["backup_id"])
        clock.advance(minutes=1)
    return ids


async def start_job(
    client: httpx.AsyncClient, admin: IssuedApiKey, body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post("/admin/verify", headers=headers(admin), json=body)


async def job_view(client: httpx.AsyncClient, admin: IssuedApiKey, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/admin/verify/{job_id}", headers=headers(admin))
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()["data"]
    return view


def progress(view: dict[str, Any]) -> tuple[str, int, int, int]:
    return view["status"], view["total"], view["verified"], view["failed"]


async def verified_resources(services: Services) -> list[str]:
    return [entry.resource for entry in await audit_entries(services.db, "BACKUP_VERIFY")]


async def test_a_job_verifies_its_selection_oldest_first_with_progress(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    ids = await make_backups(client, admin, clock, [("db-1", "INTERNAL")] * 5)
    await flip_byte(services, ids[3])
    jobs = services.verification.jobs

    started = await start_job(client, admin)
    job_id = started.json()["data"]["job_id"]
    lease = await jobs.claim(UUID(job_id))
    assert lease is not None
    first = await jobs.run_batch(lease, limit=2)
    after_first = await job_view(client, admin, job_id)
    second = await jobs.run_batch(lease, limit=2)
    after_second = await job_view(client, admin, job_id)
    last = await jobs.run_batch(lease, limit=2)
    done = await job_view(client, admin, job_id)

    assert started.status_code == 202, started.text
    assert started.headers["Location"] == f"/api/v1/admin/verify/{job_id}"
    assert progress(started.json()["data"]) == ("RUNNING", 5, 0, 0)
    assert started.json()["data"]["selection"]["statuses"] == ["ACTIVE", "QUARANTINED"]
    assert (first, second, last) == (False, False, True)
    assert progress(after_first) == ("RUNNING", 5, 2, 0)
    assert progress(after_second) == ("RUNNING", 5, 4, 1)
    assert progress(done) == ("COMPLETED", 5, 5, 1)
    assert done["finished_at"] is not None
    assert await verified_resources(services) == [f"backup:{i}" for i in ids]
    verifications = await audit_entries(services.db, "BACKUP_VERIFY")
    assert {(e.actor_id, e.details["job_id"]) for e in verifications} == {(None, job_id)}
    assert [(await record_of(services, i)).status for i in ids] == [
        BackupStatus.ACTIVE,
        BackupStatus.ACTIVE,
        BackupStatus.ACTIVE,
        BackupStatus.QUARANTINED,
        BackupStatus.ACTIVE,
    ]
    [start_entry] = await audit_entries(services.db, "VERIFY_JOB_START")
    assert (start_entry.actor_id, start_entry.details["total"]) == (admin.record.id, 5)
    [complete] = await audit_entries(services.db, "VERIFY_JOB_COMPLETE")
    assert complete.resource == f"verify_job:{job_id}"
    assert (complete.details["verified"], complete.details["failed"]) == (5, 1)
    await assert_chain_valid(services.db)


async def test_a_job_covers_only_its_selection(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    first_created = clock.now()
    ids = await make_backups(
        client,
        admin,
        clock,
        [("db-a", "INTERNAL"), ("db-b", "SECRET"), ("web-1", "INTERNAL"), ("db-c", "INTERNAL")],
    )
    await flip_byte(services, ids[3])
    await verify(client, admin, ids[3])  # db-c is QUARANTINED
    jobs = services.verification.jobs

    async def run(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        before = len(await verified_resources(services))
        job_id = (await start_job(client, admin, body)).json()["data"]["job_id"]
        await jobs.run(UUID(job_id))
        return await job_view(client, admin, job_id), (await verified_resources(services))[before:]

    by_source, by_source_done = await run(
        {"source_system": "db-*", "classification": "INTERNAL", "status": ["ACTIVE"]}
    )
    quarantined, quarantined_done = await run({"status": ["QUARANTINED"]})
    window = {
        "created_from": (first_created + timedelta(minutes=1)).isoformat(),
        "created_to": (first_created + timedelta(minutes=3)).isoformat(),
    }
    by_time, by_time_done = await run(window)

    assert progress(by_source) == ("COMPLETED", 1, 1, 0)
    assert by_source_done == [f"backup:{ids[0]}"]
    assert progress(quarantined) == ("COMPLETED", 1, 1, 1)
    assert quarantined_done == [f"backup:{ids[3]}"]
    assert progress(by_time) == ("COMPLETED", 2, 2, 0)
    assert by_time_done == [f"backup:{ids[1]}", f"backup:{ids[2]}"]


async def test_a_backup_completed_after_the_job_started_is_not_in_it(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    ids = await make_backups(client, admin, clock, [("db-1", "INTERNAL")] * 2)
    job_id = (await start_job(client, admin)).json()["data"]["job_id"]
    clock.advance(seconds=1)
    later = await make_backups(client, admin, clock, [("db-1", "INTERNAL")])

    await services.verification.jobs.run(UUID(job_id))

    assert progress(await job_view(client, admin, job_id)) == ("COMPLETED", 2, 2, 0)
    assert await verified_resources(services) == [f"backup:{i}" for i in ids]
    assert (await record_of(services, later[0])).last_verified_at is None


async def test_a_job_whose_replica_died_is_resumed_from_its_cursor_by_another(
    client: httpx.AsyncClient,
    services: Services,
    clock: FixedClock,
    key_store: FileKeyStore,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    ids = await make_backups(client, admin, clock, [("db-1", "INTERNAL")] * 5)
    job_id = (await start_job(client, admin)).json()["data"]["job_id"]
    other = build_services(services.settings, clock=clock, key_store=key_store)
    try:
        lease = await services.verification.jobs.claim(UUID(job_id))
        assert lease is not None
        await services.verification.jobs.run_batch(lease, limit=2)
        # This replica dies here: its lease is left to lapse.
        while_alive = await other.verification.jobs.sweep_once()
        clock.advance(seconds=services.settings.backup_lease_seconds + 1)
        after_lapse = await other.verification.jobs.sweep_once()
    finally:
        await other.close()

    assert while_alive == []
    assert after_lapse == [UUID(job_id)]
    assert progress(await job_view(client, admin, job_id)) == ("COMPLETED", 5, 5, 0)
    # Each backup once: the second replica began after the cursor, not from the start.
    assert await verified_resources(services) == [f"backup:{i}" for i in ids]


async def test_a_replica_that_lost_its_lease_records_nothing_more(
    client: httpx.AsyncClient,
    services: Services,
    clock: FixedClock,
    key_store: FileKeyStore,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    ids = await make_backups(client, admin, clock, [("db-1", "INTERNAL")] * 4)
    job_id = UUID((await start_job(client, admin)).json()["data"]["job_id"])
    other = build_services(services.settings, clock=clock, key_store=key_store)
    try:
        stalled = await services.verification.jobs.claim(job_id)
        assert stalled is not None
        await services.verification.jobs.run_batch(stalled, limit=1)
        clock.advance(seconds=services.settings.backup_lease_seconds + 1)
        taken = await other.verification.jobs.claim(job_id)
        assert taken is not None
        # The stalled replica wakes up and verifies the next backup: its finding is dropped.
        with pytest.raises(LeaseLost):
            await services.verification.jobs.run_batch(stalled, limit=1)
        in_between = await verified_resources(services)
        not_recorded = (await record_of(services, ids[1])).last_verified_at
        finished = await other.verification.jobs.run_batch(taken, limit=10)
    finally:
        await other.close()

    assert in_between == [f"backup:{ids[0]}"]
    assert not_recorded is None
    assert finished is True
    assert progress(await job_view(client, admin, str(job_id))) == ("COMPLETED", 4, 4, 0)
    assert await verified_resources(services) == [f"backup:{i}" for i in ids]


async def test_one_job_at_a_time(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    await make_backups(client, admin, clock, [("db-1", "INTERNAL")])
    first = (await start_job(client, admin)).json()["data"]["job_id"]

    second = await start_job(client, admin)
    await services.verification.jobs.run(UUID(first))
    third = await start_job(client, admin)

    assert second.status_code == 409
    error = second.json()["error"]
    assert (error["code"], error["details"]) == (
        "CONFLICT",
        {"reason": "VERIFY_JOB_RUNNING", "job_id": first},
    )
    assert third.status_code == 202
    assert len(await audit_entries(services.db, "VERIFY_JOB_START")) == 2
