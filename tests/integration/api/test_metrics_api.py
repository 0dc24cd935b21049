"""``GET /metrics`` (SPEC §13.2) after real API actions, parsed with prometheus-client's parser.

Counters are process-wide (several tests run in one pytest worker), so each test compares a
scrape after its actions with one before them; the shared-state gauges are read from the
test's own database and compared as they are.
"""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ssbg.domain.alerts import AlertSeverity, AlertStatus
from ssbg.domain.incident import IncidentLevel
from ssbg.infrastructure.db.models import Alert
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.services.metrics_service import MetricsService
from ssbg.services.unit_of_work import open_database
from tests.support.audit import head_sequence
from tests.support.backups import random_payload, upload
from tests.support.clock import FixedClock
from tests.support.metrics import (
    Samples,
    app_client,
    parse,
    scrape,
    series_of,
    value,
)
from tests.support.restores import backup_of, request_restore, set_incident_level

UNKNOWN_KEY = {"X-API-Key": "ssbg_" + "0" * 32}
DURATION_COUNT = "ssbg_http_request_duration_seconds_count"


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.mark.both_backends
async def test_metrics_count_a_backup_a_restore_and_a_failed_authentication(
    client: httpx.AsyncClient,
    shared_app: FastAPI,
    bootstrap_key: IssuedApiKey,
) -> None:
    payload = random_payload(3000)
    async with app_client(shared_app) as root:
        before = await scrape(root)

        backup_id = await backup_of(client, bootstrap_key, payload)
        restore = await request_restore(client, bootstrap_key, backup_id)
        assert restore.status_code == 201, restore.text
        refused = await client.get("/me", headers=UNKNOWN_KEY)
        assert refused.status_code == 401

        after = await scrape(root)

    assert delta(after, before, "ssbg_backups_total", result="success") == 1
    assert delta(after, before, "ssbg_backups_total", result="failed") == 0
    assert delta(after, before, "ssbg_backup_bytes_total") == len(payload)
    assert delta(after, before, "ssbg_restores_total", result="completed") == 1
    assert delta(after, before, "ssbg_restores_total", result="denied") == 0
    assert delta(after, before, "ssbg_auth_failures_total") == 1
    created = {"route": "/api/v1/backups", "method": "POST", "status": "201"}
    assert delta(after, before, DURATION_COUNT, **created) == 1
    me_refused = {"route": "/api/v1/me", "method": "GET", "status": "401"}
    assert delta(after, before, DURATION_COUNT, **me_refused) == 1
    assert value(after, "ssbg_http_request_duration_seconds_bucket", le="+Inf", **created) >= 1


async def test_a_restore_refused_at_admission_is_counted_as_denied(
    client: httpx.AsyncClient,
    shared_app: FastAPI,
    services: Services,
    bootstrap_key: IssuedApiKey,
) -> None:
    backup_id = await backup_of(client, bootstrap_key, b"secret payload", classification="SECRET")
    async with app_client(shared_app) as root:
        before = await scrape(root)
        # SECRET without MFA: refused at admission and recorded as DENIED.
        denied = await request_restore(client, bootstrap_key, backup_id)
        assert denied.status_code in (401, 403), denied.text
        after = await scrape(root)

    assert delta(after, before, "ssbg_restores_total", result="denied") == 1
    assert delta(after, before, "ssbg_restores_total", result="completed") == 0


@pytest.mark.parametrize("settings_overrides", [{"max_upload_bytes": 1024}])
async def test_an_upload_that_fails_midway_is_counted_as_failed_without_bytes(
    client: httpx.AsyncClient, shared_app: FastAPI, bootstrap_key: IssuedApiKey
) -> None:
    async def oversized() -> AsyncIterator[bytes]:  # streamed: no Content-Length to refuse early
        for _ in range(4):
            yield b"x" * 1024

    async with app_client(shared_app) as root:
        before = await scrape(root)
        response = await upload(client, bootstrap_key, oversized(), mode="raw")
        assert response.status_code == 413, response.text
        after = await scrape(root)

    assert delta(after, before, "ssbg_backups_total", result="failed") == 1
    assert delta(after, before, "ssbg_backups_total", result="success") == 0
    assert delta(after, before, "ssbg_backup_bytes_total") == 0


@pytest.mark.both_backends
async def test_shared_state_gauges_are_read_from_the_database_at_scrape_time(
    client: httpx.AsyncClient,
    shared_app: FastAPI,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    now = clock.now()

    def alert(severity: AlertSeverity, status: AlertStatus) -> Alert:
        return Alert(
            id=uuid.uuid4(),
            rule_id="M1",
            severity=severity,
            status=status,
            subject=f"203.0.113.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}",
            triggered_at=now,
            last_seen_at=now,
            count=1,
            context={},
            incident_level_applied=None,
        )

    async with services.db.transaction(write=True) as tx:
        for severity, status in [
            (AlertSeverity.HIGH, AlertStatus.NEW),
            (AlertSeverity.HIGH, AlertStatus.ACKNOWLEDGED),
            (AlertSeverity.CRITICAL, AlertStatus.INVESTIGATING),
            (AlertSeverity.CRITICAL, AlertStatus.RESOLVED),
        ]:
            tx.alerts.add(alert(severity, status))
    await set_incident_level(services, bootstrap_key, IncidentLevel.QUARANTINE)

    async with app_client(shared_app) as root:
        samples = await scrape(root)

    assert value(samples, "ssbg_database_up") == 1
    assert value(samples, "ssbg_alerts_open", severity="HIGH") == 2
    assert value(samples, "ssbg_alerts_open", severity="CRITICAL") == 1
    assert value(samples, "ssbg_alerts_open", severity="MEDIUM") == 0
    assert len(series_of(samples, "ssbg_alerts_open")) == len(AlertSeverity)
    assert value(samples, "ssbg_incident_level") == 2
    assert value(samples, "ssbg_audit_head_sequence") == await head_sequence(services.db)


async def test_incident_level_gauge_is_the_effective_level(
    client: httpx.AsyncClient,
    shared_app: FastAPI,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    await set_incident_level(services, bootstrap_key, IncidentLevel.ALERT)
    async with app_client(shared_app) as root:
        assert value(await scrape(root), "ssbg_incident_level") == 1
        clock.advance(minutes=31)  # level 1 reverts by itself after 30 minutes
        assert value(await scrape(root), "ssbg_incident_level") == 0


async def test_duration_is_labelled_by_route_template_not_by_raw_path(
    client: httpx.AsyncClient, shared_app: FastAPI, bootstrap_key: IssuedApiKey
) -> None:
    missing = uuid.uuid4()
    async with app_client(shared_app) as root:
        before = await scrape(root)
        headers = {"X-API-Key": bootstrap_key.api_key}
        assert (await client.get(f"/backups/{missing}", headers=headers)).status_code == 404
        assert (await client.get(f"/no-such-thing/{missing}")).status_code == 404
        assert (await client.request("BREW", "/health")).status_code == 405
        after = await scrape(root)

    by_template = {"route": "/api/v1/backups/{backup_id}", "method": "GET", "status": "404"}
    assert delta(after, before, DURATION_COUNT, **by_template) == 1
    unmatched = {"route": "<unmatched>", "method": "GET", "status": "404"}
    assert delta(after, before, DURATION_COUNT, **unmatched) == 1
    odd_method = {"route": "/api/v1/health", "method": "OTHER", "status": "405"}
    assert delta(after, before, DURATION_COUNT, **odd_method) == 1
    assert not any(
        str(missing) in label
        for series in series_of(after, DURATION_COUNT)
        for label in series.values()
    )


async def test_metrics_refuse_a_client_outside_the_allow_list_as_an_unknown_path(
    client: httpx.AsyncClient,
) -> None:
    # The ``client`` fixture connects from 192.0.2.10, outside the default loopback list.
    refused = await client.get("http://ssbg.test/metrics")
    unknown = await client.get("http://ssbg.test/no-such-endpoint")

    assert refused.status_code == unknown.status_code == 404
    body, unknown_body = refused.json()["error"], unknown.json()["error"]
    assert body["code"] == "NOT_FOUND"
    assert {**body, "request_id": None} == {**unknown_body, "request_id": None}
    assert "ssbg_" not in refused.text


async def test_metrics_refuse_a_request_forwarded_by_an_untrusted_proxy(
    client: httpx.AsyncClient, shared_app: FastAPI
) -> None:
    # A reverse proxy on this host that is not in SSBG_TRUSTED_PROXIES: its peer address is
    # loopback, but it speaks for someone else.
    async with app_client(shared_app) as root:
        forwarded = await root.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
        rfc7239 = await root.get("/metrics", headers={"Forwarded": "for=203.0.113.7"})
        direct = await root.get("/metrics")

    assert forwarded.status_code == rfc7239.status_code == 404
    assert direct.status_code == 200


@pytest.mark.parametrize(
    "settings_overrides",
    [{"trusted_proxies": ["127.0.0.1/32"], "metrics_allow": ["198.51.100.0/24"]}],
)
async def test_behind_a_trusted_proxy_the_forwarded_client_address_is_judged(
    client: httpx.AsyncClient, shared_app: FastAPI
) -> None:
    async with app_client(shared_app) as root:
        prometheus = await root.get("/metrics", headers={"X-Forwarded-For": "198.51.100.20"})
        outsider = await root.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
        the_proxy_itself = await root.get("/metrics")

    assert prometheus.status_code == 200
    assert outsider.status_code == 404
    assert the_proxy_itself.status_code == 404  # loopback is not in this allow-list


async def test_a_failing_database_omits_the_shared_gauges_and_says_so(
    services: Services, clock: FixedClock, tmp_path: Path
) -> None:
    unreachable = open_database(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'ssbg.db'}")
    try:
        samples = parse((await MetricsService(unreachable, clock).scrape()).decode())
    finally:
        await unreachable.dispose()

    assert value(samples, "ssbg_database_up") == 0
    for gauge in ("ssbg_alerts_open", "ssbg_incident_level", "ssbg_audit_head_sequence"):
        assert series_of(samples, gauge) == []
    # The process's own counters are still served.
    assert series_of(samples, "ssbg_backups_total")
