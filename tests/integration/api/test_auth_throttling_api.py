"""Auth-failure throttling (SPEC §13.2) through the HTTP API.

Every test runs with ``SSBG_AUTH_FAILURE_LIMIT=3``: four failures from one address are each
answered 401 and audited, the fifth and later get 429 with ``Retry-After``. The client is a
trusted proxy, so ``X-Forwarded-For`` names the address a request comes from.
"""

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select, update

from ssbg.api.app import create_app
from ssbg.domain.enums import Role
from ssbg.domain.errors import AuthInvalidKey
from ssbg.domain.identity import RequestContext
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.models import ApiKey, AuthFailureCount, AuthThrottleWindow
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.support.audit import assert_chain_valid, audit_entries, head_sequence
from tests.support.audit_chain import execute
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers

LIMIT = 3
ATTACKER, BYSTANDER = "203.0.113.66", "203.0.113.77"
UNKNOWN_KEY = "ssbg_" + "0" * 32

pytestmark = pytest.mark.parametrize(
    "settings_overrides",
    [{"auth_failure_limit": LIMIT, "trusted_proxies": ["192.0.2.0/24"]}],
)


async def bad_request(
    client: httpx.AsyncClient, source_ip: str = ATTACKER, key: str | None = UNKNOWN_KEY
) -> httpx.Response:
    sent = {"X-Forwarded-For": source_ip}
    if key is not None:
        sent["X-API-Key"] = key
    return await client.get("/me", headers=sent)


async def fail_until_throttled(client: httpx.AsyncClient, source_ip: str = ATTACKER) -> None:
    """The ``LIMIT + 1`` failures that are still answered 401."""
    for _ in range(LIMIT + 1):
        assert (await bad_request(client, source_ip)).status_code == 401


async def count_rows(services: Services, model: type[object]) -> int:
    async with services.db.transaction(write=False) as tx:
        return (await tx.session.execute(select(func.count()).select_from(model))).scalar_one()


def assert_throttled(response: httpx.Response) -> int:
    """The contract's 429 (SPEC §3, §4); its ``Retry-After`` in seconds."""
    assert response.status_code == 429
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "RATE_LIMITED"
    assert body["error"]["details"] == {}
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 360
    return retry_after


@pytest.mark.both_backends
async def test_failures_over_the_limit_are_throttled_from_the_next_one(
    client: httpx.AsyncClient, services: Services
) -> None:
    for number in range(1, LIMIT + 2):
        response = await bad_request(client)
        assert response.status_code == 401, number
        assert response.json()["error"]["code"] == "AUTH_INVALID_KEY"
    assert len(await audit_entries(services.db, "AUTH_FAILURE")) == LIMIT + 1

    assert_throttled(await bad_request(client))

    assert len(await audit_entries(services.db, "AUTH_FAILURE")) == LIMIT + 1


async def test_throttled_answer_is_the_same_for_every_kind_of_bad_key(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    revoked = await create_api_key(services, Role.OPERATOR)
    assert (
        await client.delete(f"/admin/api-keys/{revoked.record.id}", headers=headers(bootstrap_key))
    ).status_code == 200
    fenced = await create_api_key(services, Role.OPERATOR, allowed_ips=["198.51.100.0/24"])
    await fail_until_throttled(client)

    answers = [
        await bad_request(client, key=key)
        for key in (None, "not-a-key", UNKNOWN_KEY, revoked.api_key, fenced.api_key)
    ]

    for response in answers:
        assert_throttled(response)
    bodies = {json.dumps({**r.json()["error"], "request_id": None}) for r in answers}
    assert len(bodies) == 1
    for key in (revoked.api_key, fenced.api_key):
        assert all(key not in response.text for response in answers)


@pytest.mark.both_backends
async def test_one_auth_throttled_entry_per_address_and_window(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    await fail_until_throttled(client)
    for _ in range(10):
        assert_throttled(await bad_request(client))

    throttled = await audit_entries(services.db, "AUTH_THROTTLED")
    assert len(throttled) == 1
    entry = throttled[0]
    assert entry.actor_id is None
    assert entry.actor_role is None
    assert entry.resource == "system"
    assert entry.result == "DENIED"
    assert entry.source_ip == ATTACKER
    assert entry.details == {"failures": LIMIT + 1, "window_seconds": 300, "limit": LIMIT}
    assert UNKNOWN_KEY not in json.dumps([entry.details, entry.resource, entry.request_id])

    # 12:05:10 starts the next aligned window; the failures of 12:00 still count until 12:06.
    clock.advance(minutes=5, seconds=10)
    for _ in range(5):
        assert_throttled(await bad_request(client))
    assert len(await audit_entries(services.db, "AUTH_THROTTLED")) == 2
    await assert_chain_valid(services.db)


async def test_a_throttled_request_writes_nothing_once_its_window_is_recorded(
    client: httpx.AsyncClient, services: Services
) -> None:
    await fail_until_throttled(client)
    assert_throttled(await bad_request(client))  # records the window and AUTH_THROTTLED
    head = await head_sequence(services.db)

    for _ in range(20):
        assert_throttled(await bad_request(client))

    assert await head_sequence(services.db) == head
    async with services.db.transaction(write=False) as tx:
        counted = await tx.session.execute(select(func.sum(AuthFailureCount.failures)))
    assert counted.scalar_one() == LIMIT + 1


async def test_a_tampered_key_record_is_audited_from_a_throttled_address_too(
    client: httpx.AsyncClient, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    await execute(
        services,
        update(ApiKey.__table__).where(ApiKey.id == operator.record.id).values(role="admin"),
    )
    await fail_until_throttled(client)
    assert_throttled(await bad_request(client))

    response = await bad_request(client, key=operator.api_key)

    assert_throttled(response)
    evidence = (await audit_entries(services.db, "AUTH_FAILURE"))[-1]
    assert (evidence.details, evidence.resource) == (
        {"reason": "TAMPERED"},
        f"api_key:{operator.record.id}",
    )
    await assert_chain_valid(services.db)


async def test_another_address_is_not_throttled(
    client: httpx.AsyncClient, services: Services
) -> None:
    await fail_until_throttled(client)
    assert_throttled(await bad_request(client))

    response = await bad_request(client, BYSTANDER)

    assert response.status_code == 401
    failures = await audit_entries(services.db, "AUTH_FAILURE")
    assert failures[-1].source_ip == BYSTANDER


async def test_a_valid_key_from_a_throttled_address_still_works(
    client: httpx.AsyncClient, services: Services
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    await fail_until_throttled(client)
    assert_throttled(await bad_request(client))

    response = await client.get("/me", headers={**headers(auditor), "X-Forwarded-For": ATTACKER})

    assert response.status_code == 200
    assert response.json()["data"]["key_id"] == str(auditor.record.id)
    assert_throttled(await bad_request(client))


@pytest.mark.both_backends
async def test_the_throttle_lapses_when_its_failures_leave_the_window(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    await fail_until_throttled(client)
    clock.advance(seconds=30)
    retry_after = assert_throttled(await bad_request(client))
    assert retry_after == 6 * 60 - 30

    clock.advance(seconds=retry_after - 1)
    assert assert_throttled(await bad_request(client)) == 1
    clock.advance(seconds=1)
    before = len(await audit_entries(services.db, "AUTH_FAILURE"))

    response = await bad_request(client)

    assert response.status_code == 401
    assert len(await audit_entries(services.db, "AUTH_FAILURE")) == before + 1
    await assert_chain_valid(services.db)


@pytest.mark.both_backends
async def test_concurrent_failures_count_exactly_to_the_limit(
    client: httpx.AsyncClient, services: Services
) -> None:
    responses = await asyncio.gather(*(bad_request(client) for _ in range(30)))

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {401: LIMIT + 1, 429: 30 - LIMIT - 1}
    assert len(await audit_entries(services.db, "AUTH_FAILURE")) == LIMIT + 1
    assert len(await audit_entries(services.db, "AUTH_THROTTLED")) == 1
    await assert_chain_valid(services.db)


@pytest.mark.both_backends
async def test_old_counts_and_windows_are_deleted(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    await fail_until_throttled(client)
    assert_throttled(await bad_request(client))
    assert await count_rows(services, AuthThrottleWindow) == 1

    clock.advance(minutes=11)
    assert (await bad_request(client, BYSTANDER)).status_code == 401

    async with services.db.transaction(write=False) as tx:
        rows = (await tx.session.execute(select(AuthFailureCount))).scalars().all()
    assert [(row.source_ip, row.minute, row.failures) for row in rows] == [
        (BYSTANDER, clock.now().replace(second=0, microsecond=0), 1)
    ]
    assert await count_rows(services, AuthThrottleWindow) == 0


async def test_a_failure_without_a_source_address_is_never_throttled(
    client: httpx.AsyncClient, services: Services
) -> None:
    unknown_peer = RequestContext(request_id="no-address", source_ip=None)
    for _ in range(LIMIT * 3):
        with pytest.raises(AuthInvalidKey):
            await services.auth.authenticate(UNKNOWN_KEY, unknown_peer)

    failures = await audit_entries(services.db, "AUTH_FAILURE")
    assert len(failures) == LIMIT * 3
    assert await count_rows(services, AuthFailureCount) == 0


# -- replicas --------------------------------------------------------------------------------


@pytest.fixture
async def second_gateway(
    settings: Settings, key_store: FileKeyStore, clock: FixedClock, services: Services
) -> AsyncIterator[httpx.AsyncClient]:
    """Another replica: its own services (engine, pool, process state) and app, on the same
    database as ``client``."""
    replica = build_services(settings, clock=clock, key_store=key_store)
    transport = httpx.ASGITransport(
        app=create_app(services=replica), client=("192.0.2.20", 50000), raise_app_exceptions=False
    )
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ssbg.test/api/v1"
        ) as http:
            yield http
    finally:
        await replica.close()


@pytest.mark.both_backends
async def test_failures_through_one_gateway_throttle_the_address_on_another(
    client: httpx.AsyncClient, second_gateway: httpx.AsyncClient, services: Services
) -> None:
    await fail_until_throttled(client)

    assert_throttled(await bad_request(second_gateway))
    assert (await bad_request(second_gateway, BYSTANDER)).status_code == 401
    assert_throttled(await bad_request(client))
    assert len(await audit_entries(services.db, "AUTH_THROTTLED")) == 1


@pytest.mark.both_backends
async def test_concurrent_failures_through_two_gateways_count_once_to_the_limit(
    client: httpx.AsyncClient, second_gateway: httpx.AsyncClient, services: Services
) -> None:
    gateways = (client, second_gateway)
    responses = await asyncio.gather(*(bad_request(gateways[n % 2]) for n in range(40)))

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {401: LIMIT + 1, 429: 40 - LIMIT - 1}
    assert len(await audit_entries(services.db, "AUTH_FAILURE")) == LIMIT + 1
    assert len(await audit_entries(services.db, "AUTH_THROTTLED")) == 1
    await assert_chain_valid(services.db)
