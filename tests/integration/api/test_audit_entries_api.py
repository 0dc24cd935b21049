import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries, chain_problems
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers

# Filters on timestamps, UUIDs and actions are SQL; details are JSON (JSONB on PostgreSQL).
pytestmark = pytest.mark.both_backends


async def _make_some_history(client: httpx.AsyncClient, bootstrap_key: IssuedApiKey) -> None:
    for n in range(3):
        await client.post(
            "/admin/api-keys",
            headers=headers(bootstrap_key),
            json={"role": "operator", "description": f"op {n}"},
        )
    await client.get("/me", headers={"X-API-Key": "ssbg_" + "f" * 32})


async def test_entries_page_in_ascending_sequence_with_after_sequence(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    await _make_some_history(client, bootstrap_key)
    auditor = await create_api_key(services, Role.AUDITOR)
    total = len(await audit_entries(services.db))

    seen: list[int] = []
    cursor = "0"
    while cursor:
        page = await client.get(
            f"/audit/entries?limit=2&after_sequence={cursor}", headers=headers(auditor)
        )
        assert page.status_code == 200
        seen += [entry["sequence_number"] for entry in page.json()["data"]]
        cursor = page.json()["meta"]["next_cursor"]

    assert seen[:total] == list(range(1, total + 1))
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))


async def test_filters_select_matching_entries(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    await _make_some_history(client, bootstrap_key)
    auditor = await create_api_key(services, Role.AUDITOR)

    creates = await client.get(
        f"/audit/entries?action=API_KEY_CREATE&actor_id={bootstrap_key.record.id}",
        headers=headers(auditor),
    )
    denied = await client.get("/audit/entries?result=DENIED", headers=headers(auditor))
    window = await client.get(
        "/audit/entries",
        params={"from": clock.now().isoformat(), "to": clock.now().replace(year=2030).isoformat()},
        headers=headers(auditor),
    )
    by_resource = await client.get(
        "/audit/entries", params={"resource": "key_version:P-001"}, headers=headers(auditor)
    )

    assert [e["details"]["description"] for e in creates.json()["data"]] == ["op 0", "op 1", "op 2"]
    assert {e["action"] for e in denied.json()["data"]} == {"AUTH_FAILURE"}
    assert len(window.json()["data"]) >= 4
    assert [e["action"] for e in by_resource.json()["data"]] == ["KEY_ROTATE"]


async def test_reading_the_log_is_itself_recorded_and_the_chain_stays_valid(
    client: httpx.AsyncClient, services: Services
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)

    response = await client.get("/audit/entries?action=SYSTEM_START", headers=headers(auditor))

    assert response.status_code == 200
    reads = await audit_entries(services.db, "AUDIT_READ")
    assert reads[-1].actor_id == auditor.record.id
    assert reads[-1].details["filters"] == {"action": "SYSTEM_START"}
    assert reads[-1].details["returned"] == len(response.json()["data"])
    assert chain_problems(await audit_entries(services.db)) == []


async def test_timestamps_are_utc_with_z(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    response = await client.get("/audit/entries?limit=1", headers=headers(bootstrap_key))
    assert response.json()["data"][0]["occurred_at"].endswith("Z")
