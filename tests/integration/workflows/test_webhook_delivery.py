"""Webhook notifications (SPEC §13.2) delivered from the outbox to a real receiver on a
loopback port: signed bodies, retries with backoff on the test's clock, leases, receivers that
are down or hang, and two senders sharing one database."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import insert

from ssbg.domain.webhooks import SetAhead, signature_matches
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.models import OutboxNotification
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.services.webhook_sender import LONGEST_LEASE, WebhookSender
from ssbg.settings import Settings
from tests.support.audit import audit_entries
from tests.support.clock import FixedClock
from tests.support.factories import headers
from tests.support.log_capture import logged_events
from tests.support.outbox import WEBHOOK_SECRET, outbox_rows, post_incident_level
from tests.support.processes import wait_until
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver().start()
    yield running
    running.stop()


@pytest.fixture
def settings_overrides(receiver: WebhookReceiver) -> dict[str, object]:
    return {"alert_webhook_url": receiver.url, "alert_webhook_secret": SecretStr(WEBHOOK_SECRET)}


@pytest.fixture
def sender(services: Services) -> WebhookSender:
    assert services.webhooks is not None
    return services.webhooks


@contextlib.asynccontextmanager
async def running(*senders: WebhookSender) -> AsyncIterator[None]:
    """The senders' loops as the app's lifespan runs them."""
    tasks = [asyncio.create_task(sender.run()) for sender in senders]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _raise_level(
    client: httpx.AsyncClient, key: IssuedApiKey, clock: FixedClock, level: int, reason: str
) -> httpx.Response:
    clock.advance(seconds=30)  # a fresh TOTP step for every change
    return await post_incident_level(client, key, level, reason, totp_at=clock.now())


@pytest.mark.both_backends
async def test_incident_level_change_is_delivered_signed_with_the_documented_body(
    client: httpx.AsyncClient,
    services: Services,
    sender: WebhookSender,
    receiver: WebhookReceiver,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    response = await _raise_level(client, bootstrap_key, clock, 2, "ransomware indicators")
    assert response.status_code == 200
    changed_at = clock.now()

    report = await sender.deliver_due()

    [row] = await outbox_rows(services.db)
    assert report.delivered == [row.id]
    [request] = receiver.received()
    assert request.path == "/hooks/ssbg"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-ssbg-event"] == "INCIDENT_LEVEL_CHANGE"
    assert request.headers["x-ssbg-delivery"] == str(row.id)
    assert signature_matches(
        WEBHOOK_SECRET.encode(), request.body, request.headers["x-ssbg-signature"]
    )
    assert request.body == row.body.encode()
    assert json.loads(request.body) == {
        "event": "INCIDENT_LEVEL_CHANGE",
        "incident": {
            "from_level": 0,
            "to_level": 2,
            "reason": "ransomware indicators",
            "actor_id": str(bootstrap_key.record.id),
            "changed_at": changed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "alert_id": None,
        },
    }
    assert (row.delivered_at, row.attempts, row.last_error) == (changed_at, 1, None)
    assert row.claimed_by == sender.name


@pytest.mark.both_backends
async def test_a_receiver_that_answers_500_gets_the_same_delivery_again_after_the_backoff(
    client: httpx.AsyncClient,
    services: Services,
    sender: WebhookSender,
    receiver: WebhookReceiver,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    receiver.answer([500])
    await _raise_level(client, bootstrap_key, clock, 1, "suspicious logins")

    first = await sender.deliver_due()
    [failed] = await outbox_rows(services.db)
    too_early = await sender.deliver_due()
    clock.advance(seconds=4)
    still_early = await sender.deliver_due()
    clock.advance(seconds=1)
    second = await sender.deliver_due()

    assert first.failed == [failed.id]
    assert (failed.attempts, failed.last_error, failed.delivered_at) == (1, "HTTP 500", None)
    assert failed.next_attempt_at == clock.now()  # 5 s after the first attempt
    assert failed.claimed_until is None
    assert too_early.delivered == too_early.failed == still_early.delivered == []
    assert second.delivered == [failed.id]
    requests = receiver.received()
    assert [r.answered for r in requests] == [500, 200]
    assert requests[0].body == requests[1].body
    assert {r.headers["x-ssbg-delivery"] for r in requests} == {str(failed.id)}
    [delivered] = await outbox_rows(services.db)
    assert (delivered.attempts, delivered.delivered_at) == (2, clock.now())


async def test_a_receiver_that_is_down_fails_neither_the_request_nor_the_notification(
    client: httpx.AsyncClient,
    services: Services,
    sender: WebhookSender,
    receiver: WebhookReceiver,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    receiver.stop()

    async with running(sender):
        response = await _raise_level(client, bootstrap_key, clock, 1, "receiver is down")
        await wait_until(lambda: _attempted(services, 1))

    assert response.status_code == 200
    [row] = await outbox_rows(services.db)
    assert (row.attempts, row.last_error, row.delivered_at) == (1, "ConnectError", None)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=5)

    receiver.start()
    clock.advance(seconds=5)
    await sender.deliver_due()
    assert receiver.deliveries() == [str(row.id)]


async def test_a_hanging_receiver_does_not_hold_up_requests(
    client: httpx.AsyncClient,
    services: Services,
    sender: WebhookSender,
    receiver: WebhookReceiver,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    receiver.hold()
    async with running(sender):
        first = await _raise_level(client, bootstrap_key, clock, 1, "first")
        await wait_until(lambda: _receiver_busy(receiver))

        # The sender is stuck in the POST of the first notification; the API is not.
        second = await _raise_level(client, bootstrap_key, clock, 2, "second")
        assert receiver.in_flight == 1
        assert receiver.received() == []

        receiver.release()
        await wait_until(lambda: _delivered(services, 2))

    assert (first.status_code, second.status_code) == (200, 200)
    assert len(receiver.deliveries()) == 2


async def test_an_answer_slower_than_the_timeout_is_a_failed_attempt(
    services: Services,
    receiver: WebhookReceiver,
    settings: Settings,
    key_store: FileKeyStore,
    clock: FixedClock,
) -> None:
    quick = settings.model_copy(update={"alert_webhook_timeout_seconds": 0.2})
    gateway = build_services(quick, clock=clock, key_store=key_store)
    try:
        assert gateway.webhooks is not None
        await _queue(gateway, 1)
        receiver.hold()
        report = await gateway.webhooks.deliver_due()
    finally:
        receiver.release()
        await gateway.close()

    [row] = await outbox_rows(services.db)
    assert report.failed == [row.id]
    assert (row.attempts, row.last_error) == (1, "timeout")


@pytest.mark.both_backends
async def test_a_lapsed_claim_is_delivered_by_another_sender_and_the_stale_claimer_loses(
    services: Services, sender: WebhookSender, receiver: WebhookReceiver, clock: FixedClock
) -> None:
    await _queue(services, 1)
    async with services.db.transaction(write=True) as tx:  # a sender that then crashed
        [claimed] = await tx.outbox.claim_due(
            clock.now(),
            claimer="crashed",
            lease_until=clock.now() + timedelta(minutes=1),
            limit=5,
            set_ahead=SetAhead.at(clock.now(), LONGEST_LEASE),
        )

    while_leased = await sender.deliver_due()
    clock.advance(minutes=1)
    after_lease = await sender.deliver_due()
    async with services.db.transaction(write=True) as tx:
        stale = await tx.outbox.mark_delivered(claimed.id, claimer="crashed", now=clock.now())

    assert while_leased.delivered == []
    assert after_lease.delivered == [claimed.id]
    assert stale is False
    [row] = await outbox_rows(services.db)
    assert (row.attempts, row.claimed_by) == (2, sender.name)
    assert receiver.deliveries() == [str(claimed.id)]


@pytest.mark.both_backends
async def test_two_senders_on_one_database_deliver_each_notification_exactly_once(
    services: Services,
    settings: Settings,
    key_store: FileKeyStore,
    sender: WebhookSender,
    receiver: WebhookReceiver,
    clock: FixedClock,
) -> None:
    other = build_services(settings, clock=clock, key_store=key_store)
    assert other.webhooks is not None
    try:
        async with running(sender, other.webhooks):
            for _ in range(6):
                await _queue(services, 10)
                await _queue(other, 10)
            await wait_until(lambda: _delivered(services, 120))
    finally:
        await other.close()

    rows = await outbox_rows(services.db)
    assert sorted(receiver.deliveries(), key=int) == [str(row.id) for row in rows]
    assert len(receiver.received()) == 120
    assert {row.attempts for row in rows} == {1}
    assert {row.claimed_by for row in rows} <= {sender.name, other.webhooks.name}


async def test_delivered_notifications_are_pruned_after_a_week_and_pending_ones_kept(
    services: Services, sender: WebhookSender, receiver: WebhookReceiver, clock: FixedClock
) -> None:
    await _queue(services, 1)
    await sender.deliver_due()
    receiver.stop()
    await _queue(services, 1)
    await sender.deliver_due()

    clock.advance(days=7, seconds=-1)
    kept_for_now = await sender.prune()
    clock.advance(seconds=2)
    pruned = await sender.prune()

    assert (kept_for_now, pruned) == (0, 1)
    [pending] = await outbox_rows(services.db)
    assert pending.delivered_at is None


async def _queue(services: Services, count: int) -> None:
    async with services.db.transaction(write=True) as tx:
        for index in range(count):
            services.notifications.enqueue(
                tx, "INCIDENT_LEVEL_CHANGE", "incident", {"to_level": 1, "index": index}
            )


async def _attempted(services: Services, count: int) -> bool:
    return sum(row.attempts > 0 for row in await outbox_rows(services.db)) >= count


async def _delivered(services: Services, count: int) -> bool:
    rows = await outbox_rows(services.db)
    return sum(row.delivered_at is not None for row in rows) >= count


async def _receiver_busy(receiver: WebhookReceiver) -> bool:
    return receiver.in_flight > 0


async def test_a_failed_delivery_is_logged_without_the_url_or_the_secret(
    services: Services, sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    receiver.answer([503])
    await _queue(services, 1)

    with logged_events() as events:
        await sender.deliver_due()

    [failure] = [e for e in events if e["event"] == "webhook_delivery_failed"]
    [row] = await outbox_rows(services.db)
    assert failure["delivery_id"] == row.id
    assert failure["error"] == "HTTP 503"
    assert failure["attempts"] == 1
    logged = json.dumps(events)
    assert receiver.url not in logged
    assert "/hooks/ssbg" not in logged
    assert WEBHOOK_SECRET not in logged


@pytest.mark.both_backends
async def test_an_alert_its_level_change_and_its_escalation_are_delivered_in_order(
    client: httpx.AsyncClient,
    services: Services,
    sender: WebhookSender,
    receiver: WebhookReceiver,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    created = await client.post(
        "/admin/policies",
        headers=headers(bootstrap_key),
        json={"name": "p", "effect": "deny", "is_active": False, "rule": {}},
    )  # alert M9: level 1
    assert created.status_code == 201
    clock.advance(seconds=900)
    await services.alerts.escalate_overdue()

    await sender.deliver_due()

    bodies = [json.loads(request.body) for request in receiver.received()]
    assert [body["event"] for body in bodies] == [
        "ALERT_TRIGGER",
        "INCIDENT_LEVEL_CHANGE",
        "ALERT_ESCALATE",
    ]
    trigger, level, escalation = bodies
    alert_id = trigger["alert"]["alert_id"]
    assert (trigger["alert"]["rule_id"], trigger["alert"]["status"]) == ("M9", "NEW")
    assert trigger["alert"]["subject"] == f"policy:{created.json()['data']['policy_id']}"
    assert (level["incident"]["to_level"], level["incident"]["alert_id"]) == (1, alert_id)
    assert level["incident"]["actor_id"] is None
    assert (escalation["alert"]["alert_id"], escalation["alert"]["status"]) == (
        alert_id,
        "ESCALATED",
    )
    assert all(
        signature_matches(WEBHOOK_SECRET.encode(), r.body, r.headers["x-ssbg-signature"])
        for r in receiver.received()
    )


@pytest.mark.both_backends
async def test_a_notification_written_or_changed_behind_the_gateway_is_never_signed_or_sent(
    client: httpx.AsyncClient,
    services: Services,
    sender: WebhookSender,
    receiver: WebhookReceiver,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    await _raise_level(client, bootstrap_key, clock, 1, "genuine")  # one genuine notification
    [genuine] = await outbox_rows(services.db)
    forged_body = '{"event":"INCIDENT_LEVEL_CHANGE","incident":{"to_level":0}}'
    async with services.db.engine.begin() as connection:
        await connection.execute(
            insert(OutboxNotification.__table__).values(
                event="INCIDENT_LEVEL_CHANGE",
                body=forged_body,
                created_at=clock.now(),
                attempts=0,
                next_attempt_at=clock.now(),
                seal=genuine.seal,  # a genuine row's seal, moved
            )
        )

    await sender.deliver_due()

    assert [json.loads(r.body)["incident"]["reason"] for r in receiver.received()[:1]] == [
        "genuine"
    ]
    assert all(r.body != forged_body.encode() for r in receiver.received())
    forged = [row for row in await outbox_rows(services.db) if row.body == forged_body]
    assert [(row.delivered_at, row.last_error) for row in forged] == [(None, "TAMPERED: not sent")]
    [entry] = await audit_entries(services.db, "TAMPERING_DETECTED")
    assert entry.resource == f"notification:{forged[0].id}"
    alerts = (await client.get("/admin/alerts", headers=headers(bootstrap_key))).json()["data"]
    assert [alert["rule_id"] for alert in alerts] == ["M6"]
