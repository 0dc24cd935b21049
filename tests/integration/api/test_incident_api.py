import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers


async def _set(
    client: httpx.AsyncClient, key: IssuedApiKey, clock: FixedClock, level: int, reason: str
) -> httpx.Response:
    clock.advance(seconds=30)  # a fresh TOTP step for every change
    return await client.post(
        "/admin/incident",
        headers=headers(key, totp_at=clock.now()),
        json={"level": level, "reason": reason},
    )


@pytest.mark.both_backends
async def test_level_starts_normal_and_admins_can_read_it(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)

    response = await client.get("/admin/incident", headers=headers(admin))

    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["level"], data["name"], data["history"]) == (0, "NORMAL", [])


@pytest.mark.both_backends
async def test_super_admin_with_mfa_raises_the_level_and_it_is_audited(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    response = await _set(client, bootstrap_key, clock, 2, "ransomware indicators on db-7")

    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["level"], data["name"], data["reason"]) == (
        2,
        "QUARANTINE",
        "ransomware indicators on db-7",
    )
    assert data["history"][0]["from_level"] == 0
    assert data["history"][0]["to_level"] == 2
    change = (await audit_entries(services.db, "INCIDENT_LEVEL_CHANGE"))[-1]
    assert change.resource == "incident"
    assert change.details == {
        "from_level": 0,
        "to_level": 2,
        "reason": "ransomware indicators on db-7",
        "actor_id": str(bootstrap_key.record.id),
        "alert_id": None,
    }
    later = await client.get("/admin/incident", headers=headers(bootstrap_key))
    assert (await audit_entries(services.db))[-1].incident_level == 2
    assert later.json()["data"]["level"] == 2


@pytest.mark.both_backends
async def test_alert_level_reverts_thirty_minutes_after_it_was_raised(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    raised = await _set(client, bootstrap_key, clock, 1, "suspicious logins")
    assert raised.json()["data"]["auto_revert_at"] is not None

    clock.advance(minutes=29)
    still = await client.get("/admin/incident", headers=headers(bootstrap_key))
    clock.advance(minutes=1)
    reverted = await client.get("/admin/incident", headers=headers(bootstrap_key))

    assert still.json()["data"]["level"] == 1
    assert reverted.json()["data"]["level"] == 0
    assert reverted.json()["data"]["auto_revert_at"] is None


@pytest.mark.both_backends
async def test_quarantine_stays_until_manually_lowered(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    await _set(client, bootstrap_key, clock, 2, "investigating")
    clock.advance(days=3)

    assert (await client.get("/admin/incident", headers=headers(bootstrap_key))).json()["data"][
        "level"
    ] == 2
    lowered = await _set(client, bootstrap_key, clock, 0, "all clear")
    assert lowered.status_code == 200
    assert lowered.json()["data"]["level"] == 0


@pytest.mark.both_backends
async def test_lockdown_is_never_lifted_over_the_api(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    assert (await _set(client, bootstrap_key, clock, 3, "keys exfiltrated")).status_code == 200

    for level in (0, 1, 2, 3):
        response = await _set(client, bootstrap_key, clock, level, "trying to leave lockdown")
        assert response.status_code == 423
        assert response.json()["error"]["code"] == "INCIDENT_LOCKDOWN"
    clock.advance(days=365)
    assert (await client.get("/admin/incident", headers=headers(bootstrap_key))).json()["data"][
        "level"
    ] == 3


@pytest.mark.both_backends
async def test_setting_the_current_level_again_is_refused(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    response = await _set(client, bootstrap_key, clock, 0, "no change")
    assert response.status_code == 409


async def test_setting_the_level_needs_mfa(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    response = await client.post(
        "/admin/incident", headers=headers(bootstrap_key), json={"level": 1, "reason": "test"}
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_MFA_REQUIRED"
    assert await audit_entries(services.db, "INCIDENT_LEVEL_CHANGE") == []


async def test_admins_cannot_set_the_level(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    response = await _set(client, admin, clock, 1, "test")
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body", [{"level": 4, "reason": "x" * 5}, {"level": "2", "reason": "xxxxx"}, {"level": 1}]
)
async def test_invalid_level_requests_are_refused(
    client: httpx.AsyncClient,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
    body: dict[str, object],
) -> None:
    response = await client.post(
        "/admin/incident", headers=headers(bootstrap_key, totp_at=clock.now()), json=body
    )
    assert response.status_code == 422
