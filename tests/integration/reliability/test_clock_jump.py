"""Fault matrix: the clock jumping backwards across a lease (docs/reliability.md).

A lease is a deadline on the wall clock: the process doing the work renews it, and a sweep
fails the work once it lapsed. When the clock jumps back (an NTP step, a VM restored from a
snapshot) a deadline set before the jump is suddenly far ahead. The rule (SPEC §5 crash
recovery, ``ssbg.domain.leases``): a lease renewed *after* now was renewed by a clock ahead of
ours, so the sweep counts it again from now, with its own length. A live holder renews it
anyway; a dead one's work is failed one lease later on the new clock — never kept for the
length of the jump.

The gateway reads the test's ``FixedClock``; each cell moves it back a day across a lease and
runs the sweeps by hand.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update

from ssbg.domain.enums import Role
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.webhooks import SetAhead
from ssbg.infrastructure.db.models import OutboxNotification
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.services.webhook_sender import LONGEST_LEASE, WebhookSender
from tests.support.audit import audit_entries
from tests.support.backups import get_record, leftover_under_prefix, objects_left
from tests.support.clock import FixedClock
from tests.support.dead_work import leave_dead_upload, leave_dead_verification
from tests.support.factories import create_api_key, headers
from tests.support.fault_contract import assert_fault_contract, marked_payload
from tests.support.outbox import WEBHOOK_SECRET, outbox_rows
from tests.support.processes import wait_until
from tests.support.restores import backup_of, set_incident_level
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.both_backends

JUMP = timedelta(days=1)


@pytest.fixture
async def keys(services: Services, bootstrap_key: IssuedApiKey) -> tuple[IssuedApiKey, ...]:
    return await create_api_key(services, Role.OPERATOR), await create_api_key(services, Role.ADMIN)


@pytest.mark.parametrize("settings_overrides", [{"backup_lease_seconds": 1}])
async def test_a_live_upload_across_a_backwards_jump_is_not_failed_by_the_sweep(
    client: httpx.AsyncClient,
    services: Services,
    keys: tuple[IssuedApiKey, IssuedApiKey],
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    operator, admin = keys
    lease = timedelta(seconds=services.settings.backup_lease_seconds)
    payload = marked_payload(256 * 1024)
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield payload[: len(payload) // 2]
        await release.wait()
        yield payload[len(payload) // 2 :]

    upload = asyncio.create_task(
        client.post(
            "/backups",
            params={"classification": "INTERNAL", "source_system": "db-1", "filename": "x"},
            headers={**headers(operator), "Content-Type": "application/octet-stream"},
            content=body(),
        )
    )
    storage = services.settings.resolved_storage_path

    async def streaming() -> bool:
        return any(leftover_under_prefix(storage, p.name) for p in _prefixes(storage))

    await wait_until(streaming, within=30)
    [backup_id] = [p.name for p in _prefixes(storage)]

    clock.set(clock.now() - JUMP)
    assert (await services.backup_recovery.recover()).interrupted == []
    # The holder renews on the new clock (every third of its lease)...
    clock.advance(seconds=lease.total_seconds() * 0.6)

    async def renewed_on_the_new_clock() -> bool:
        record = await get_record(services, backup_id)
        assert record is not None
        return record.lease_expires_at == clock.now() + lease

    await wait_until(renewed_on_the_new_clock, within=30)
    # ...so a sweep past the lease it held before the renewal leaves it alone.
    clock.advance(seconds=lease.total_seconds() * 0.6)
    assert (await services.backup_recovery.recover()).interrupted == []
    release.set()
    response = await upload

    assert response.status_code == 201, response.text
    assert response.json()["data"]["status"] == "ACTIVE"
    await assert_fault_contract(
        services, payloads=[payload], roots=[tmp_path], http=client, operator=operator, admin=admin
    )


def _prefixes(storage: Path) -> list[Path]:
    """The per-backup folders of the local store (``<2 hex>/<backup id>``)."""
    return [p for p in storage.glob("*/*") if p.is_dir()] if storage.exists() else []


async def test_a_dead_upload_whose_lease_predates_a_backwards_jump_fails_one_lease_later(
    client: httpx.AsyncClient,
    services: Services,
    keys: tuple[IssuedApiKey, IssuedApiKey],
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    operator, admin = keys
    lease = timedelta(seconds=services.settings.backup_lease_seconds)
    dead = await leave_dead_upload(services, operator, clock.now(), lease)

    clock.set(clock.now() - JUMP)  # the lease now ends a day and a lease from now
    first = await services.backup_recovery.recover()
    clock.advance(seconds=lease.total_seconds() + 1)
    second = await services.backup_recovery.recover()

    assert first.interrupted == []  # not failed early: its holder might be alive
    assert second.interrupted == [dead]  # and not kept PROCESSING for the length of the jump
    record = await get_record(services, dead)
    assert record is not None
    assert (record.status, record.failure_reason) == ("FAILED", "INTERRUPTED")
    assert await objects_left(services, dead) == []
    assert leftover_under_prefix(services.settings.resolved_storage_path, dead) == []
    seen = await client.get(f"/backups/{dead}", headers=headers(operator))
    assert seen.status_code == 200, seen.text
    assert seen.json()["data"]["status"] == "FAILED"
    await assert_fault_contract(
        services, payloads=[], roots=[tmp_path], http=client, operator=operator, admin=admin
    )


async def test_a_dead_verification_whose_lease_predates_a_backwards_jump_fails_one_lease_later(
    client: httpx.AsyncClient,
    services: Services,
    keys: tuple[IssuedApiKey, IssuedApiKey],
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    operator, admin = keys
    lease = timedelta(seconds=services.settings.backup_lease_seconds)
    payload = marked_payload(64 * 1024)
    backup_id = await backup_of(client, operator, payload)
    dead = await leave_dead_verification(services, admin, backup_id, clock.now(), lease)

    clock.set(clock.now() - JUMP)
    first = await services.backup_recovery.recover()
    clock.advance(seconds=lease.total_seconds() + 1)
    second = await services.backup_recovery.recover()

    assert first.restores_interrupted == []
    assert second.restores_interrupted == [dead]
    seen = await client.get(f"/restores/{dead}", headers=headers(admin))
    assert seen.status_code == 200, seen.text
    assert seen.json()["data"]["status"] == "FAILED"
    assert "download" not in seen.json()["data"] or not seen.json()["data"]["download"]
    await assert_fault_contract(
        services, payloads=[payload], roots=[tmp_path], http=client, operator=operator, admin=admin
    )


async def test_an_alert_raised_before_a_backwards_jump_escalates_at_once_not_a_day_late(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    keys: tuple[IssuedApiKey, IssuedApiKey],
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    operator, admin = keys
    changed = await client.post(
        "/admin/policies",
        headers=headers(bootstrap_key),
        json={"name": "night-freeze", "effect": "deny", "is_active": False, "rule": {}},
    )
    assert changed.status_code == 201, changed.text
    listed = await client.get("/admin/alerts", params={"rule_id": "M9"}, headers=headers(admin))
    [alert] = listed.json()["data"]
    assert alert["status"] == "NEW"

    clock.set(clock.now() - JUMP)  # raised "a day from now": its wait so far is unknown
    shown = await client.get(f"/admin/alerts/{alert['alert_id']}", headers=headers(admin))
    escalated = await client.get(
        "/admin/alerts", params={"status": "ESCALATED"}, headers=headers(admin)
    )
    swept = await services.alerts.escalate_overdue()

    assert shown.json()["data"]["status"] == "ESCALATED"
    assert [a["alert_id"] for a in escalated.json()["data"]] == [alert["alert_id"]]
    assert [str(a) for a in swept] == [alert["alert_id"]]
    [entry] = await audit_entries(services.db, "ALERT_ESCALATE")
    assert entry.details["unacknowledged_seconds"] == 0
    assert await services.alerts.escalate_overdue() == []
    # M9 raised the incident level to ALERT (restores need MFA); whoever took the escalation
    # brings it back (on the new clock it would revert by itself only a day late: fail safe).
    await set_incident_level(services, bootstrap_key, IncidentLevel.NORMAL)
    await assert_fault_contract(
        services, payloads=[], roots=[tmp_path], http=client, operator=operator, admin=admin
    )


# -- the webhook outbox: a claim (a sender's lease) and a retry time set before the jump ------


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver().start()
    yield running
    running.stop()


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    """A webhook to the ``receiver`` for the cells that ask for one."""
    if "receiver" not in request.fixturenames:
        return {}
    receiver: WebhookReceiver = request.getfixturevalue("receiver")
    return {"alert_webhook_url": receiver.url, "alert_webhook_secret": SecretStr(WEBHOOK_SECRET)}


def _sender(services: Services) -> WebhookSender:
    assert services.webhooks is not None
    return services.webhooks


async def _notify(services: Services, reason: str) -> int:
    """A notification queued the way every trigger queues one (in its own transaction)."""
    async with services.db.transaction(write=True) as tx:
        services.notifications.enqueue(
            tx, "INCIDENT_LEVEL_CHANGE", "incident", {"to_level": 1, "reason": reason}
        )
    return max(row.id for row in await outbox_rows(services.db))


async def test_a_notification_claimed_by_a_sender_that_died_before_a_backwards_jump_is_sent_at_once(
    client: httpx.AsyncClient,
    services: Services,
    keys: tuple[IssuedApiKey, IssuedApiKey],
    receiver: WebhookReceiver,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    operator, admin = keys
    sender = _sender(services)
    row_id = await _notify(services, "claimed, then the sender died")
    async with services.db.transaction(write=True) as tx:  # what the dead sender's claim left
        [claimed] = await tx.outbox.claim_due(
            clock.now(),
            claimer="died",
            lease_until=clock.now() + LONGEST_LEASE,
            limit=1,
            set_ahead=SetAhead.at(clock.now(), LONGEST_LEASE),
        )
    assert claimed.id == row_id

    clock.set(clock.now() - JUMP)  # the claim now ends a day and a lease from now
    report = await sender.deliver_due()

    assert report.delivered == [row_id]
    assert receiver.deliveries() == [str(row_id)]
    [row] = [r for r in await outbox_rows(services.db) if r.id == row_id]
    assert (row.claimed_by, row.attempts, row.delivered_at) == (sender.name, 2, clock.now())
    await assert_fault_contract(
        services, payloads=[], roots=[tmp_path], http=client, operator=operator, admin=admin
    )


async def test_a_retry_scheduled_before_a_backwards_jump_is_due_at_once_and_a_refused_row_never(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    keys: tuple[IssuedApiKey, IssuedApiKey],
    receiver: WebhookReceiver,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    operator, admin = keys
    sender = _sender(services)
    retried = await _notify(services, "the receiver answered 500")
    refused = await _notify(services, "changed behind the gateway")
    async with services.db.engine.begin() as connection:  # its seal no longer matches
        await connection.execute(
            update(OutboxNotification.__table__)
            .where(OutboxNotification.id == refused)
            .values(body='{"event":"INCIDENT_LEVEL_CHANGE","incident":{"to_level":0}}')
        )
    receiver.answer([500])
    first = await sender.deliver_due()
    assert (first.failed, receiver.deliveries()) == ([retried, refused], [])
    rows = {r.id: r for r in await outbox_rows(services.db)}
    assert rows[retried].next_attempt_at > clock.now()  # the backoff, on the old clock
    assert rows[refused].last_error == "TAMPERED: not sent"
    # The refusal was audited, and raised alert M6: two notifications queued, due now.
    queued = sorted(i for i, row in rows.items() if i not in (retried, refused))
    assert len(queued) == 2
    assert all(rows[i].next_attempt_at == clock.now() for i in queued)

    clock.set(clock.now() - JUMP)  # all of them are now due a day from now
    second = await sender.deliver_due()
    again = await sender.deliver_due()

    assert sorted(second.delivered) == sorted([retried, *queued])
    assert second.failed == again.failed == again.delivered == []
    assert sorted(receiver.deliveries()) == sorted(str(i) for i in [retried, *queued])
    assert len(await audit_entries(services.db, "TAMPERING_DETECTED")) == 1  # not re-refused
    # TAMPERING_DETECTED raised M6 (QUARANTINE): whoever handles it brings the level back.
    await set_incident_level(services, bootstrap_key, IncidentLevel.NORMAL)
    await assert_fault_contract(
        services, payloads=[], roots=[tmp_path], http=client, operator=operator, admin=admin
    )
