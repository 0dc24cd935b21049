"""Retention rules over the API (SPEC §13.4): created, read, listed and changed by admins,
each change audited and raising alert M9; a rule that keeps nothing is refused and changes
nothing."""

from typing import Any

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.factories import create_api_key, headers
from tests.support.retention import create_rule

RULE = {
    "name": "databases",
    "source_systems": ["db-*", "pg-main"],
    "classifications": ["INTERNAL", "CONFIDENTIAL"],
    "keep_last": 3,
    "keep_daily": 7,
    "keep_weekly": 4,
    "keep_monthly": 12,
    "min_age_days": 2,
}


@pytest.mark.both_backends
async def test_admin_creates_reads_and_lists_a_rule_audited_with_alert_m9(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)

    created = await client.post("/admin/retention-rules", headers=headers(admin), json=RULE)

    assert created.status_code == 201, created.text
    rule = created.json()["data"]
    assert {name: rule[name] for name in RULE} == RULE
    assert rule["is_active"] is True
    assert rule["created_by"] == rule["updated_by"] == str(admin.record.id)
    fetched = await client.get(f"/admin/retention-rules/{rule['rule_id']}", headers=headers(admin))
    assert fetched.json()["data"] == rule
    listed = await client.get("/admin/retention-rules", headers=headers(admin))
    assert listed.json()["data"] == [rule]
    assert listed.json()["meta"]["total"] == 1
    (entry,) = await audit_entries(services.db, "RETENTION_RULE_CREATE")
    assert entry.resource == f"retention_rule:{rule['rule_id']}"
    assert {name: entry.details[name] for name in RULE} == RULE
    (alert,) = (await client.get("/admin/alerts", headers=headers(admin))).json()["data"]
    assert (alert["rule_id"], alert["subject"]) == ("M9", f"retention_rule:{rule['rule_id']}")


@pytest.mark.both_backends
async def test_patch_changes_only_given_fields_and_audits_before_and_after(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    rule = await create_rule(client, bootstrap_key, keep_last=3)

    patched = await client.patch(
        f"/admin/retention-rules/{rule['rule_id']}",
        headers=headers(bootstrap_key),
        json={"keep_daily": 7, "keep_last": 3, "is_active": False},
    )

    assert patched.status_code == 200, patched.text
    after = patched.json()["data"]
    assert (after["keep_last"], after["keep_daily"], after["is_active"]) == (3, 7, False)
    assert after["source_systems"] == rule["source_systems"]
    (entry,) = await audit_entries(services.db, "RETENTION_RULE_UPDATE")
    assert entry.details["changed"] == ["is_active", "keep_daily"]
    assert entry.details["before"] == {"is_active": True, "keep_daily": 0}
    assert entry.details["after"] == {"is_active": False, "keep_daily": 7}
    assert entry.details["name"] == "keep-3"


@pytest.mark.both_backends
async def test_a_rule_that_keeps_nothing_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    created = await client.post(
        "/admin/retention-rules",
        headers=headers(bootstrap_key),
        json={"name": "nothing", "source_systems": ["*"], "min_age_days": 30},
    )
    rule = await create_rule(client, bootstrap_key, keep_last=3)
    patched = await client.patch(
        f"/admin/retention-rules/{rule['rule_id']}",
        headers=headers(bootstrap_key),
        json={"keep_last": 0},
    )

    for refused in (created, patched):
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert set(error["details"]) == {"keep_last", "keep_daily", "keep_weekly", "keep_monthly"}
    listed = (await client.get("/admin/retention-rules", headers=headers(bootstrap_key))).json()
    assert [r["name"] for r in listed["data"]] == ["keep-3"]
    assert listed["data"][0]["keep_last"] == 3
    assert len(await audit_entries(services.db, "RETENTION_RULE_CREATE")) == 1
    assert await audit_entries(services.db, "RETENTION_RULE_UPDATE") == []


@pytest.mark.both_backends
async def test_rule_names_are_unique(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    await create_rule(client, bootstrap_key, name="a", keep_last=1)
    second = await create_rule(client, bootstrap_key, name="b", keep_last=1)

    same = await client.post(
        "/admin/retention-rules",
        headers=headers(bootstrap_key),
        json={"name": "a", "source_systems": ["x"], "keep_last": 1},
    )
    renamed = await client.patch(
        f"/admin/retention-rules/{second['rule_id']}",
        headers=headers(bootstrap_key),
        json={"name": "a"},
    )

    assert (same.status_code, same.json()["error"]["code"]) == (409, "CONFLICT")
    assert (renamed.status_code, renamed.json()["error"]["details"]) == (409, {"name": "a"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"keep_last": -1}, "keep_last"),
        ({"keep_daily": 2**63}, "keep_daily"),
        ({"keep_last": "3"}, "keep_last"),
        ({"keep_last": 1, "min_age_days": -1}, "min_age_days"),
        ({"keep_last": 1, "source_systems": []}, "source_systems"),
        ({"keep_last": 1, "source_systems": ["db/../*"]}, "source_systems.0"),
        ({"keep_last": 1, "classifications": ["TOP_SECRET"]}, "classifications.0"),
        ({"keep_last": 1, "name": ""}, "name"),
        ({"keep_last": 1, "forget": True}, "forget"),
    ],
)
async def test_malformed_rules_are_refused_naming_the_field(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await client.post(
        "/admin/retention-rules",
        headers=headers(bootstrap_key),
        json={"name": "r", "source_systems": ["db-*"], **body},
    )

    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert any(key.endswith(field) for key in details), details
    assert await audit_entries(services.db, "RETENTION_RULE_CREATE") == []


async def test_an_unknown_rule_is_not_found(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    path = "/admin/retention-rules/00000000-0000-4000-8000-000000000000"

    fetched = await client.get(path, headers=headers(bootstrap_key))
    patched = await client.patch(path, headers=headers(bootstrap_key), json={"keep_last": 1})

    assert [fetched.status_code, patched.status_code] == [404, 404]
    assert fetched.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.AUDITOR])
async def test_operators_and_auditors_may_neither_read_nor_change_rules(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, role: Role
) -> None:
    caller = await create_api_key(services, role)
    rule = await create_rule(client, bootstrap_key, keep_last=1)
    path = f"/admin/retention-rules/{rule['rule_id']}"

    responses = [
        await client.post("/admin/retention-rules", headers=headers(caller), json=RULE),
        await client.get("/admin/retention-rules", headers=headers(caller)),
        await client.get(path, headers=headers(caller)),
        await client.patch(path, headers=headers(caller), json={"keep_last": 9}),
        await client.post(
            "/admin/retention/apply", headers=headers(caller), json={"dry_run": True}
        ),
    ]

    assert [r.status_code for r in responses] == [403] * 5
    assert {r.json()["error"]["code"] for r in responses} == {"FORBIDDEN_ROLE"}
    fetched = await client.get(path, headers=headers(bootstrap_key))
    assert fetched.json()["data"]["keep_last"] == 1
