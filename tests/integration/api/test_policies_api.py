import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.factories import create_api_key, headers

RULE = {
    "operations": ["restore"],
    "roles": ["admin"],
    "classifications": ["CONFIDENTIAL", "SECRET"],
    "source_systems": ["db-*"],
    "departments": ["finance"],
    "hours": "08-18",
}


@pytest.mark.both_backends
async def test_admin_creates_reads_and_lists_a_policy(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)

    created = await client.post(
        "/admin/policies",
        headers=headers(admin),
        json={
            "name": "finance-db-restores-office-hours",
            "description": "Finance databases are restored by admins in office hours only.",
            "effect": "deny",
            "priority": 10,
            "rule": RULE,
        },
    )

    assert created.status_code == 201
    policy = created.json()["data"]
    assert policy["rule"] == RULE
    assert policy["is_active"] is True
    assert policy["created_by"] == str(admin.record.id)
    fetched = await client.get(f"/admin/policies/{policy['policy_id']}", headers=headers(admin))
    assert fetched.json()["data"] == policy
    listed = await client.get("/admin/policies", headers=headers(admin))
    assert [p["policy_id"] for p in listed.json()["data"]] == [policy["policy_id"]]
    entry = (await audit_entries(services.db, "POLICY_CREATE"))[-1]
    assert entry.resource == f"policy:{policy['policy_id']}"
    assert entry.details["rule"] == RULE


@pytest.mark.both_backends
async def test_patch_changes_only_given_fields_and_audits_before_and_after(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    created = (
        await client.post(
            "/admin/policies",
            headers=headers(bootstrap_key),
            json={"name": "no-ci-backups", "effect": "deny", "rule": {"source_systems": ["ci-*"]}},
        )
    ).json()["data"]

    patched = await client.patch(
        f"/admin/policies/{created['policy_id']}",
        headers=headers(bootstrap_key),
        json={"is_active": False, "priority": 5},
    )

    assert patched.status_code == 200
    data = patched.json()["data"]
    assert (data["is_active"], data["priority"], data["name"]) == (False, 5, "no-ci-backups")
    entry = (await audit_entries(services.db, "POLICY_UPDATE"))[-1]
    assert entry.details == {
        "changed": ["is_active", "priority"],
        "before": {"is_active": True, "priority": 100},
        "after": {"is_active": False, "priority": 5},
    }


@pytest.mark.both_backends
async def test_policy_names_are_unique(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    body = {"name": "only-once", "effect": "require_mfa", "rule": {}}
    assert (
        await client.post("/admin/policies", headers=headers(bootstrap_key), json=body)
    ).status_code == 201

    again = await client.post("/admin/policies", headers=headers(bootstrap_key), json=body)

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "CONFLICT"


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"operations": ["archive"]}, "rule.operations.0"),
        ({"roles": ["root"]}, "rule.roles.0"),
        ({"classifications": ["TOP_SECRET"]}, "rule.classifications.0"),
        ({"hours": "8-18"}, "rule.hours"),
        ({"hours": "18-08"}, "rule.hours"),
        ({"hours": "00-25"}, "rule.hours"),
        ({"roles": []}, "rule.roles"),
        ({"colour": "red"}, "rule.colour"),
    ],
)
async def test_invalid_rules_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    rule: dict[str, object],
    field: str,
) -> None:
    response = await client.post(
        "/admin/policies",
        headers=headers(bootstrap_key),
        json={"name": "bad", "effect": "deny", "rule": rule},
    )

    assert response.status_code == 422
    assert field in response.json()["error"]["details"]
    assert await audit_entries(services.db, "POLICY_CREATE") == []
    listed = await client.get("/admin/policies", headers=headers(bootstrap_key))
    assert listed.json()["data"] == []


async def test_unknown_effect_is_refused(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    response = await client.post(
        "/admin/policies",
        headers=headers(bootstrap_key),
        json={"name": "x", "effect": "allow", "rule": {}},
    )
    assert response.status_code == 422
    assert "effect" in response.json()["error"]["details"]
