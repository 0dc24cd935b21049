"""Review access to the audit evidence: validation, checkpoints, export — and its own trail."""

import json
from typing import Any

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.audit_chain import anchor_at, append_until, entry_row
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers

INTERVAL = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"audit_checkpoint_interval": INTERVAL})


@pytest.fixture
async def auditor(services: Services, bootstrap_key: IssuedApiKey) -> IssuedApiKey:
    return await create_api_key(services, Role.AUDITOR)


async def last_entry(
    client: httpx.AsyncClient, reviewer: IssuedApiKey, action: str | None = None
) -> dict[str, Any]:
    """The newest audit entry (with ``action``, if given), read as the reviewer."""
    entries: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = await client.get(
            "/audit/entries",
            params={"after_sequence": cursor, "limit": 100},
            headers=headers(reviewer),
        )
        entries += page.json()["data"]
        if not page.json()["meta"]["next_cursor"]:
            break
        cursor = int(page.json()["meta"]["next_cursor"])
    return [entry for entry in entries if action in (None, entry["action"])][-1]


@pytest.mark.both_backends
async def test_validate_returns_the_contract_shape_and_records_audit_validate(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, clock: FixedClock
) -> None:
    await append_until(services, 12)

    response = await client.post("/audit/validate", headers=headers(auditor))

    assert response.status_code == 200
    data = response.json()["data"]
    assert data == {
        "valid": True,
        "entries_checked": 12,
        "first_invalid_sequence": None,
        "reason": None,
        "head": {"sequence": 12, "hash": (await entry_row(services, 12))["entry_hash"]},
        "checkpoints_verified": 2,
        "anchor": await anchor_at(services, 12, clock.now()),
    }
    recorded = (
        await client.get(
            "/audit/entries", params={"action": "AUDIT_VALIDATE"}, headers=headers(auditor)
        )
    ).json()["data"]
    assert len(recorded) == 1
    assert recorded[0]["sequence_number"] == 13
    assert recorded[0]["result"] == "SUCCESS"
    assert recorded[0]["actor_id"] == str(auditor.record.id)
    assert recorded[0]["details"] == {
        "via": "api",
        "from_sequence": None,
        "to_sequence": None,
        "full_chain": True,
        "segments": 1,  # a short chain: one pass, no worker processes
        "validation": data,
    }


@pytest.mark.both_backends
async def test_failed_full_chain_validation_is_recorded_as_failed(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services
) -> None:
    from tests.support.audit_chain import update_entry

    await append_until(services, 8)
    await update_entry(services, 6, resource="backup:tampered")

    response = await client.post("/audit/validate", headers=headers(auditor))

    data = response.json()["data"]
    assert (data["valid"], data["first_invalid_sequence"], data["reason"]) == (
        False,
        6,
        "HASH_MISMATCH",
    )
    recorded = await last_entry(client, auditor, "AUDIT_VALIDATE")
    assert recorded["result"] == "FAILED"
    assert recorded["details"]["full_chain"] is True
    assert recorded["details"]["validation"] == data
    # ... and, in the same transaction, alert M10 and the lockdown it imposes.
    alert = await last_entry(client, auditor, "ALERT_TRIGGER")
    assert (alert["details"]["rule_id"], alert["sequence_number"]) == (
        "M10",
        recorded["sequence_number"] + 1,
    )
    lockdown = await last_entry(client, auditor, "INCIDENT_LEVEL_CHANGE")
    assert (lockdown["details"]["to_level"], lockdown["actor_id"]) == (3, None)


@pytest.mark.both_backends
async def test_range_validation_is_anchored_on_the_entry_before_it(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services
) -> None:
    from tests.support.audit_chain import update_entry

    await append_until(services, 20)
    await update_entry(services, 4, resource="backup:tampered")  # outside the range

    inside = await client.post(
        "/audit/validate", json={"from_sequence": 6, "to_sequence": 14}, headers=headers(auditor)
    )
    across = await client.post(
        "/audit/validate", json={"from_sequence": 3, "to_sequence": 14}, headers=headers(auditor)
    )

    assert inside.json()["data"] | {"head": None, "anchor": None} == {
        "valid": True,
        "entries_checked": 9,
        "first_invalid_sequence": None,
        "reason": None,
        "head": None,
        "checkpoints_verified": 1,  # 10
        "anchor": None,  # at 20: after the range, which does not run to the head
    }
    assert across.json()["data"]["first_invalid_sequence"] == 4
    recorded = await last_entry(client, auditor, "AUDIT_VALIDATE")
    assert recorded["result"] == "FAILED"
    assert recorded["details"]["full_chain"] is False
    assert (recorded["details"]["from_sequence"], recorded["details"]["to_sequence"]) == (3, 14)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from_sequence": 5, "to_sequence": 4}, "to_sequence"),
        ({"from_sequence": 0}, "from_sequence"),
        ({"to": 3}, "to"),
    ],
)
async def test_invalid_validation_ranges_are_validation_errors(
    body: dict[str, Any], field: str, client: httpx.AsyncClient, auditor: IssuedApiKey
) -> None:
    response = await client.post("/audit/validate", json=body, headers=headers(auditor))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]


@pytest.mark.both_backends
async def test_a_checkpoint_is_signed_every_interval_and_listed(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services
) -> None:
    await append_until(services, 17)

    response = await client.get("/audit/checkpoints", headers=headers(auditor))

    assert response.status_code == 200
    checkpoints = response.json()["data"]
    assert [c["sequence_number"] for c in checkpoints] == [5, 10, 15]
    assert [c["previous_checkpoint_sequence"] for c in checkpoints] == [0, 5, 10]
    for checkpoint in checkpoints:
        entry = await entry_row(services, checkpoint["sequence_number"])
        assert checkpoint["entry_hash"] == entry["entry_hash"]
        assert checkpoint["checkpoint_interval"] == INTERVAL
        assert len(checkpoint["signing_key_id"]) == 64
        assert checkpoint["created_at"].endswith("Z")
    read = await last_entry(client, auditor)
    assert read["action"] == "AUDIT_READ"


@pytest.mark.both_backends
async def test_reading_checkpoints_is_recorded_as_audit_read(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services
) -> None:
    await client.get("/audit/checkpoints", params={"limit": 2}, headers=headers(auditor))

    entries = (
        await client.get(
            "/audit/entries", params={"action": "AUDIT_READ"}, headers=headers(auditor)
        )
    ).json()["data"]
    assert entries[0]["details"] == {"view": "checkpoints", "after_sequence": 0, "returned": 0}
    assert entries[0]["actor_role"] == "auditor"


@pytest.mark.both_backends
async def test_export_streams_a_bundle_and_records_audit_export_with_the_range(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services
) -> None:
    await append_until(services, 11)

    response = await client.get(
        "/audit/export", params={"from_sequence": 3}, headers=headers(auditor)
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in response.content.splitlines()]
    header, end = records[0], records[-1]
    assert header["type"] == "header"
    assert header["format"] == "SSBG-AUDIT-BUNDLE"
    assert header["version"] == 2
    assert header["range"] == {"from_sequence": 3, "to_sequence": 12}
    assert header["anchor_hash"] == (await entry_row(services, 2))["entry_hash"]
    # The audit anchor as the key store held it after the export's entry committed: the
    # appends up to 11 were one transaction, which advanced it at its checkpoints to its last.
    assert header["audit_anchor"]["sequence"] == 11
    assert header["signing_key"]["algorithm"] == "ECDSA-P384-SHA384"
    assert "BEGIN PUBLIC KEY" in header["signing_key"]["public_key_pem"]
    entries = [r for r in records if r["type"] == "entry"]
    # The export's own AUDIT_EXPORT entry (12) is in the bundle it produced.
    assert [e["sequence_number"] for e in entries] == list(range(3, 13))
    assert entries[-1]["action"] == "AUDIT_EXPORT"
    assert entries[-1]["details"] == {"from_sequence": 3, "to_sequence": None}
    assert [r["sequence_number"] for r in records if r["type"] == "checkpoint"] == [5, 10]
    # Then the signed head, over the last entry exported.
    assert records[-2]["type"] == "signed_head"
    assert (records[-2]["sequence_number"], records[-2]["entry_hash"]) == (
        12,
        entries[-1]["entry_hash"],
    )
    assert end == {"type": "end", "entries": 10, "checkpoints": 2}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/audit/validate"),
        ("GET", "/audit/checkpoints"),
        ("GET", "/audit/export"),
        ("GET", "/audit/entries"),
    ],
)
async def test_operators_are_refused_with_forbidden_role(
    method: str, path: str, client: httpx.AsyncClient, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)

    response = await client.request(method, path, headers=headers(operator))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN_ROLE"


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ADMIN, Role.SUPER_ADMIN])
async def test_reviewers_may_validate(
    role: Role, client: httpx.AsyncClient, services: Services
) -> None:
    reviewer = await create_api_key(services, role)

    response = await client.post("/audit/validate", headers=headers(reviewer))

    assert response.status_code == 200
    assert response.json()["data"]["valid"] is True
