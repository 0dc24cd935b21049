"""Authentication matrix: every bad key gets the same answer and leaves evidence."""

import json
from datetime import timedelta

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers


async def _expect_rejected(
    client: httpx.AsyncClient, services: Services, sent: dict[str, str], reason: str
) -> None:
    before = len(await audit_entries(services.db, "AUTH_FAILURE"))

    response = await client.get("/me", headers=sent)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_INVALID_KEY"
    failures = await audit_entries(services.db, "AUTH_FAILURE")
    assert len(failures) == before + 1
    entry = failures[-1]
    assert entry.result == "DENIED"
    assert entry.details == {"reason": reason}
    assert entry.source_ip == "192.0.2.10"
    presented = sent.get("X-API-Key")
    if presented:
        row = json.dumps([entry.details, entry.resource, entry.request_id, entry.actor_role])
        assert presented not in row


async def test_missing_key_is_rejected(client: httpx.AsyncClient, services: Services) -> None:
    await _expect_rejected(client, services, {}, "MISSING")


@pytest.mark.parametrize(
    "presented",
    ["not-a-key", "ssbg_XYZ", "ssbg_" + "a" * 31, "SSBG_" + "a" * 32, "ssbg_" + "A" * 32],
)
async def test_malformed_key_is_rejected(
    client: httpx.AsyncClient, services: Services, presented: str
) -> None:
    await _expect_rejected(client, services, {"X-API-Key": presented}, "MALFORMED")


@pytest.mark.both_backends
async def test_unknown_key_is_rejected(client: httpx.AsyncClient, services: Services) -> None:
    await _expect_rejected(client, services, {"X-API-Key": "ssbg_" + "0" * 32}, "UNKNOWN")


@pytest.mark.both_backends
async def test_revoked_key_is_rejected(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    revoked = await client.delete(
        f"/admin/api-keys/{operator.record.id}", headers=headers(bootstrap_key)
    )
    assert revoked.status_code == 200

    await _expect_rejected(client, services, headers(operator), "REVOKED")


@pytest.mark.both_backends
async def test_expired_key_is_rejected(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    operator = await create_api_key(
        services, Role.OPERATOR, expires_at=clock.now() + timedelta(hours=1)
    )
    assert (await client.get("/me", headers=headers(operator))).status_code == 200
    clock.advance(hours=1)

    await _expect_rejected(client, services, headers(operator), "EXPIRED")


async def test_key_used_from_outside_its_allow_list_is_rejected(
    client: httpx.AsyncClient, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR, allowed_ips=["198.51.100.0/24"])
    await _expect_rejected(client, services, headers(operator), "IP_NOT_ALLOWED")


async def test_key_used_from_inside_its_allow_list_passes(
    client: httpx.AsyncClient, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR, allowed_ips=["192.0.2.0/24"])
    response = await client.get("/me", headers=headers(operator))
    assert response.status_code == 200
    assert response.json()["data"]["key_id"] == str(operator.record.id)


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    client: httpx.AsyncClient, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR, allowed_ips=["203.0.113.7"])
    spoofed = {**headers(operator), "X-Forwarded-For": "203.0.113.7"}

    assert (await client.get("/me", headers=spoofed)).status_code == 401

    services.settings.trusted_proxies = ["192.0.2.0/24"]
    assert (await client.get("/me", headers=spoofed)).status_code == 200


@pytest.mark.both_backends
async def test_valid_key_records_its_use_at_most_once_a_minute(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    first_use = clock.now()

    assert (await client.get("/me", headers=headers(auditor))).status_code == 200
    clock.advance(seconds=30)
    assert (await client.get("/me", headers=headers(auditor))).status_code == 200
    after_30s = await services.api_keys.get_api_key(auditor.record.id)
    clock.advance(seconds=31)
    assert (await client.get("/me", headers=headers(auditor))).status_code == 200
    after_61s = await services.api_keys.get_api_key(auditor.record.id)

    assert after_30s.last_used_at == first_use
    assert after_30s.last_used_ip == "192.0.2.10"
    assert after_61s.last_used_at == clock.now()


async def test_successful_authentication_writes_no_audit_entry(
    client: httpx.AsyncClient, services: Services
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    before = len(await audit_entries(services.db))

    assert (await client.get("/me", headers=headers(auditor))).status_code == 200

    assert len(await audit_entries(services.db)) == before
