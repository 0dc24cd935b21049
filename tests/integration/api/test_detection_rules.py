"""Rules M1-M10 end to end (SPEC §9, §13.2): the request whose audit entry crosses a rule's
threshold answers with the alert already committed — its ``ALERT_TRIGGER`` right after the
triggering entry in the chain — and the incident level raised to the rule's level."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, update

from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.enums import AuditAction, Role
from ssbg.infrastructure.db.models import AuditLogEntry, Policy, RestoreVolumeDay
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.audit_chain import execute
from tests.support.backups import get_record
from tests.support.clock import FixedClock
from tests.support.factories import actor, create_api_key, headers
from tests.support.restores import backup_of, request_restore

pytestmark = pytest.mark.both_backends

BAD_KEY = {"X-API-Key": "ssbg_" + "0" * 32}
PROXY = {"trusted_proxies": ["192.0.2.10/32"]}  # the test client's address


async def alerts(client: httpx.AsyncClient, key: IssuedApiKey, **params: str) -> list[Any]:
    response = await client.get("/admin/alerts", params=params, headers=headers(key))
    assert response.status_code == 200, response.text
    data: list[Any] = response.json()["data"]
    return data


async def incident_level(client: httpx.AsyncClient, key: IssuedApiKey) -> int:
    response = await client.get("/admin/incident", headers=headers(key))
    level: int = response.json()["data"]["level"]
    return level


async def assert_triggered_right_after(services: Services, action: str, rule_id: str) -> None:
    """The alert's entry follows the last entry of ``action``: one transaction, one lock."""
    trigger = (await audit_entries(services.db, action))[-1]
    alert = (await audit_entries(services.db, "ALERT_TRIGGER"))[-1]
    assert alert.details["rule_id"] == rule_id
    assert alert.sequence_number == trigger.sequence_number + 1
    assert alert.details["context"]["trigger_sequence"] == trigger.sequence_number
    assert (alert.actor_id, alert.actor_role) == (None, None)


# -- M1 ----------------------------------------------------------------------------------


async def test_m1_five_failed_authentications_from_one_address_raise_an_alert_and_level_1(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    for _ in range(4):
        assert (await client.get("/me", headers=BAD_KEY)).status_code == 401
    assert await alerts(client, bootstrap_key) == []

    assert (await client.get("/me", headers=BAD_KEY)).status_code == 401

    [alert] = await alerts(client, bootstrap_key)
    assert (alert["rule_id"], alert["severity"], alert["status"]) == ("M1", "HIGH", "NEW")
    assert (alert["subject"], alert["count"]) == ("192.0.2.10", 1)
    assert alert["context"]["failures"] == 5
    assert alert["incident_level_applied"] == 1
    assert await incident_level(client, bootstrap_key) == 1
    await assert_triggered_right_after(services, "AUTH_FAILURE", "M1")
    change = (await audit_entries(services.db, "INCIDENT_LEVEL_CHANGE"))[-1]
    assert (change.actor_id, change.details["alert_id"]) == (None, alert["alert_id"])

    assert (await client.get("/me", headers=BAD_KEY)).status_code == 401  # a repeat counts
    [again] = await alerts(client, bootstrap_key)
    assert (again["alert_id"], again["count"]) == (alert["alert_id"], 2)
    assert len(await audit_entries(services.db, "ALERT_TRIGGER")) == 1
    await assert_chain_valid(services.db)


@pytest.mark.parametrize("settings_overrides", [PROXY])
async def test_m1_counts_per_address_and_within_five_minutes(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    for n in range(4):
        await client.get("/me", headers={**BAD_KEY, "X-Forwarded-For": f"198.51.100.{n}"})
    for _ in range(4):
        await client.get("/me", headers={**BAD_KEY, "X-Forwarded-For": "198.51.100.9"})
    clock.advance(minutes=5, seconds=1)
    await client.get("/me", headers={**BAD_KEY, "X-Forwarded-For": "198.51.100.9"})

    assert await alerts(client, bootstrap_key) == []


# -- M2 ----------------------------------------------------------------------------------


async def test_m2_the_tenth_restore_by_one_key_within_an_hour_raises_an_alert(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    for _ in range(9):
        assert (await request_restore(client, admin, backup_id)).status_code == 201
    assert await alerts(client, bootstrap_key) == []

    assert (await request_restore(client, admin, backup_id)).status_code == 201

    [alert] = await alerts(client, bootstrap_key)
    assert (alert["rule_id"], alert["subject"]) == ("M2", str(admin.record.id))
    assert alert["context"]["restores"] == 10
    assert await incident_level(client, bootstrap_key) == 1


# -- M3 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"alert_m3_min_bytes": 1000}])
async def test_m3_a_day_of_restores_three_times_the_weekly_mean_raises_level_2(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"x" * 1200)
    assert (await request_restore(client, admin, backup_id)).status_code == 201
    assert await alerts(client, bootstrap_key) == []  # no baseline yet: a fresh install

    today = clock.now().date()
    await execute(
        services,
        insert(RestoreVolumeDay).values(
            [
                {
                    "day": (today - timedelta(days=n)).isoformat(),
                    "restored_bytes": 300,
                    "restores": 1,
                }
                for n in range(1, 8)
            ]
        ),
    )  # a week of history: 300 bytes a day; today 1,200 bytes so far (< 3 x 300 + min)
    assert (await request_restore(client, admin, backup_id)).status_code == 201  # 2,400 today

    [alert] = await alerts(client, bootstrap_key)
    assert (alert["rule_id"], alert["severity"], alert["subject"]) == ("M3", "HIGH", "system")
    assert alert["context"]["restored_bytes_today"] == 2400
    assert alert["context"]["trailing_daily_mean_bytes"] == 300
    assert await incident_level(client, bootstrap_key) == 2
    await assert_triggered_right_after(services, "RESTORE_COMPLETE", "M3")


# -- M4 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [PROXY])
async def test_m4_a_restore_from_an_address_new_for_that_key_raises_an_alert(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")

    async def restore_from(address: str) -> None:
        response = await client.post(
            "/restores",
            headers={**headers(admin), "X-Forwarded-For": address},
            json={"backup_id": backup_id, "justification": "INC-1: restore drill"},
        )
        assert response.status_code == 201, response.text

    await restore_from("198.51.100.7")  # the key's first restore: nothing to compare with
    await restore_from("198.51.100.7")
    assert await alerts(client, bootstrap_key) == []

    await restore_from("203.0.113.66")

    [alert] = await alerts(client, bootstrap_key)
    assert (alert["rule_id"], alert["severity"]) == ("M4", "MEDIUM")
    assert alert["subject"] == str(admin.record.id)
    assert alert["context"]["source_ip"] == "203.0.113.66"
    await assert_triggered_right_after(services, "RESTORE_REQUEST", "M4")


# -- M5 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"business_hours": "08-18"}])
async def test_m5_a_key_unwrapped_outside_business_hours_raises_an_alert(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    # P4 refuses restores outside business hours, so over the API a key is unwrapped outside
    # them only when an admitted restore's unwrap crosses the end of the day; the entry is
    # appended here as the restore use case appends it, through the same audit trail.
    async def unwrap_at(hour: int) -> None:
        clock.set(datetime(2026, 12, 7, hour, 30, tzinfo=UTC))
        async with services.db.transaction(write=True) as tx:
            await services.trail.append(
                tx,
                AuditEvent.by(
                    actor(bootstrap_key),
                    AuditAction.KEY_UNWRAP,
                    backup_resource(bootstrap_key.record.id),
                    key_version="P-001",
                ),
            )

    await unwrap_at(17)
    assert await alerts(client, bootstrap_key) == []
    await unwrap_at(18)

    [alert] = await alerts(client, bootstrap_key)
    assert (alert["rule_id"], alert["subject"]) == ("M5", str(bootstrap_key.record.id))
    assert alert["context"]["local_hour"] == 18


async def test_m5_never_fires_with_the_default_business_hours(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"payload")
    clock.set(datetime(2026, 12, 7, 3, 0, tzinfo=UTC))

    assert (await request_restore(client, admin, backup_id)).status_code == 201

    assert await audit_entries(services.db, "KEY_UNWRAP")
    assert await alerts(client, bootstrap_key) == []


# -- M6 and M10 --------------------------------------------------------------------------


async def test_m6_a_failed_validation_of_a_range_raises_level_2(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    for _ in range(6):
        await client.get("/me", headers=headers(bootstrap_key))
        await services.policies.list_policies()
    await create_api_key(services, Role.AUDITOR)
    await execute(
        services,
        update(AuditLogEntry).where(AuditLogEntry.sequence_number == 2).values(resource="x"),
    )

    response = await client.post(
        "/audit/validate",
        json={"from_sequence": 1, "to_sequence": 3},
        headers=headers(bootstrap_key),
    )

    assert response.json()["data"]["valid"] is False
    [alert] = await alerts(client, bootstrap_key)
    assert (alert["rule_id"], alert["severity"], alert["subject"]) == ("M6", "CRITICAL", "audit")
    assert alert["context"]["validation"]["first_invalid_sequence"] == 2
    assert await incident_level(client, bootstrap_key) == 2


async def test_m6_a_tampered_sealed_row_raises_an_alert_about_it(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    created = await client.post(
        "/admin/policies",
        headers=headers(bootstrap_key),
        json={"name": "no-secret", "effect": "deny", "rule": {"classifications": ["SECRET"]}},
    )
    policy_id = created.json()["data"]["policy_id"]
    await execute(services, update(Policy).values(is_active=False))

    response = await client.get(f"/admin/policies/{policy_id}", headers=headers(bootstrap_key))

    assert response.status_code == 500
    m6 = [alert for alert in await alerts(client, bootstrap_key) if alert["rule_id"] == "M6"]
    assert [alert["subject"] for alert in m6] == [f"policy:{policy_id}"]
    await assert_triggered_right_after(services, "TAMPERING_DETECTED", "M6")


async def test_m10_a_failed_full_chain_validation_locks_the_gateway_down(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    await create_api_key(services, Role.OPERATOR)
    await execute(
        services,
        update(AuditLogEntry).where(AuditLogEntry.sequence_number == 1).values(resource="x"),
    )

    response = await client.post("/audit/validate", headers=headers(bootstrap_key))

    assert response.json()["data"]["valid"] is False
    [alert] = await alerts(client, bootstrap_key)
    assert (alert["rule_id"], alert["severity"], alert["incident_level_applied"]) == (
        "M10",
        "CRITICAL",
        3,
    )
    assert await incident_level(client, bootstrap_key) == 3
    refused = await client.get("/backups", headers=headers(bootstrap_key))
    assert refused.status_code == 423
    await assert_triggered_right_after(services, "AUDIT_VALIDATE", "M10")


# -- M7 ----------------------------------------------------------------------------------


async def test_m7_three_failed_restores_within_ten_minutes_raise_level_2(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backups = [await backup_of(client, admin, f"payload {n}".encode()) for n in range(3)]
    for n, backup_id in enumerate(backups):
        record = await get_record(services, backup_id)
        assert record is not None
        stored = bytearray(await services.object_store.read_bytes(record.storage_ref))
        stored[-1] ^= 0x01
        await services.object_store.put_bytes(record.storage_ref, bytes(stored))
        assert (await request_restore(client, admin, backup_id)).status_code == 500
        assert len(await alerts(client, bootstrap_key)) == (1 if n == 2 else 0)

    [alert] = await alerts(client, bootstrap_key)
    assert (alert["rule_id"], alert["subject"]) == ("M7", "system")
    assert alert["context"]["restore_failures"] == 3
    assert await incident_level(client, bootstrap_key) == 2


# -- M8 ----------------------------------------------------------------------------------


async def test_m8_the_fifth_deletion_within_an_hour_raises_level_2(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backups = [await backup_of(client, admin, f"payload {n}".encode()) for n in range(5)]
    for n, backup_id in enumerate(backups):
        deleted = await client.delete(f"/backups/{backup_id}", headers=headers(admin))
        assert deleted.status_code == 200, deleted.text
        assert len(await alerts(client, bootstrap_key)) == (1 if n == 4 else 0)

    [alert] = await alerts(client, bootstrap_key)
    assert (alert["rule_id"], alert["severity"]) == ("M8", "CRITICAL")
    assert alert["context"]["deletions"] == 5
    assert await incident_level(client, bootstrap_key) == 2
    await assert_triggered_right_after(services, "BACKUP_DELETE", "M8")


# -- M9 ----------------------------------------------------------------------------------


async def test_m9_every_policy_change_raises_an_alert_about_that_policy(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    created = await client.post(
        "/admin/policies",
        headers=headers(bootstrap_key),
        json={"name": "no-secret", "effect": "deny", "rule": {"classifications": ["SECRET"]}},
    )
    policy_id = created.json()["data"]["policy_id"]
    [alert] = await alerts(client, bootstrap_key)
    assert (alert["rule_id"], alert["subject"], alert["count"]) == ("M9", f"policy:{policy_id}", 1)
    assert alert["context"]["action"] == "POLICY_CREATE"
    await assert_triggered_right_after(services, "POLICY_CREATE", "M9")

    await client.patch(
        f"/admin/policies/{policy_id}", headers=headers(bootstrap_key), json={"priority": 5}
    )

    [again] = await alerts(client, bootstrap_key)
    assert (again["alert_id"], again["count"]) == (alert["alert_id"], 2)
    assert again["context"]["action"] == "POLICY_UPDATE"
    assert await incident_level(client, bootstrap_key) == 1


async def test_ordinary_first_use_raises_no_alert(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, operator, b"first backup")
    restored = await request_restore(client, admin, backup_id)
    assert restored.status_code == 201
    await client.get("/backups", headers=headers(operator))
    await client.post("/audit/validate", headers=headers(bootstrap_key))

    assert await alerts(client, bootstrap_key) == []
    assert await incident_level(client, bootstrap_key) == 0
