"""Webhook delivery by real gateway processes (uvicorn, the app's lifespan runs the sender):
the outbox is in the database, so a notification outlives the gateway that queued it."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ssbg.domain.webhooks import signature_matches
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.services.unit_of_work import AppDatabase
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.outbox import WEBHOOK_SECRET, outbox_rows, post_incident_level
from tests.support.processes import GatewayProcess, gateway_env, wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.both_backends


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A receiver whose port is reserved but that is down until the test starts it."""
    reserved = WebhookReceiver()
    yield reserved
    reserved.stop()


@pytest.fixture
def settings_overrides(receiver: WebhookReceiver) -> dict[str, object]:
    return {"alert_webhook_url": receiver.url, "alert_webhook_secret": SecretStr(WEBHOOK_SECRET)}


@pytest.mark.slow
async def test_a_notification_queued_while_the_receiver_is_down_is_delivered_once_after_a_restart(
    services: Services,
    settings: Settings,
    bootstrap_key: IssuedApiKey,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    env = gateway_env(settings, TEST_KEY_PASSWORD) | {
        "SSBG_ALERT_WEBHOOK_URL": receiver.url,
        "SSBG_ALERT_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    gateway = GatewayProcess(env, tmp_path)
    try:
        gateway.start()
        async with httpx.AsyncClient(timeout=30) as http:
            response = await post_incident_level(
                http,
                bootstrap_key,
                1,
                "queued while the receiver is down",
                totp_at=datetime.now(UTC),
                base_url=gateway.base_url,
            )
        assert response.status_code == 200
        await wait_until(lambda: _attempted(services.db))
        gateway.stop()
        [pending] = await outbox_rows(services.db)
        assert (pending.delivered_at, pending.last_error) == (None, "ConnectError")

        receiver.start()
        gateway.start()  # a new process on the same database
        await wait_until(lambda: _delivered(services.db))
    finally:
        gateway.close()

    [row] = await outbox_rows(services.db)
    assert receiver.deliveries() == [str(row.id)]
    [request] = receiver.received()
    assert signature_matches(
        WEBHOOK_SECRET.encode(), request.body, request.headers["x-ssbg-signature"]
    )
    assert request.body == row.body.encode()
    assert row.attempts >= 2


async def _attempted(db: AppDatabase) -> bool:
    return any(row.attempts > 0 for row in await outbox_rows(db))


async def _delivered(db: AppDatabase) -> bool:
    return any(row.delivered_at is not None for row in await outbox_rows(db))
