"""Malformed requests get the contract's 422/404 and change nothing."""

import httpx
import pytest

from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import head_sequence
from tests.support.factories import headers


async def _assert_nothing_written(services: Services, before: int) -> None:
    assert await head_sequence(services.db) == before


async def test_malformed_json_is_a_validation_error(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    before = await head_sequence(services.db)

    response = await client.post(
        "/admin/api-keys",
        headers={**headers(bootstrap_key), "Content-Type": "application/json"},
        content=b'{"role": "admin", "description": ',
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    await _assert_nothing_written(services, before)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/admin/api-keys", {"role": 3, "description": "x"}, "role"),
        ("/admin/api-keys", {"role": "admin", "description": ["x"]}, "description"),
        ("/admin/api-keys", {"role": "admin", "description": 7}, "description"),
        (
            "/admin/api-keys",
            {"role": "admin", "description": "x", "allowed_ips": "10.0.0.1"},
            "allowed_ips",
        ),
        (
            "/admin/policies",
            {"name": "p", "effect": "deny", "rule": {}, "priority": "1"},
            "priority",
        ),
        (
            "/admin/policies",
            {"name": "p", "effect": "deny", "rule": {}, "is_active": "yes"},
            "is_active",
        ),
        ("/admin/policies", {"name": "p", "effect": "deny", "rule": []}, "rule"),
    ],
)
async def test_wrong_types_are_refused(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    path: str,
    body: dict[str, object],
    field: str,
) -> None:
    before = await head_sequence(services.db)

    response = await client.post(path, headers=headers(bootstrap_key), json=body)

    assert response.status_code == 422
    assert field in response.json()["error"]["details"]
    await _assert_nothing_written(services, before)


@pytest.mark.parametrize("path", ["/admin/api-keys", "/admin/policies"])
async def test_unknown_fields_are_refused(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, path: str
) -> None:
    before = await head_sequence(services.db)
    body = (
        {"role": "admin", "description": "x", "is_root": True}
        if path.endswith("api-keys")
        else {"name": "p", "effect": "deny", "rule": {}, "is_root": True}
    )

    response = await client.post(path, headers=headers(bootstrap_key), json=body)

    assert response.status_code == 422
    assert "is_root" in response.json()["error"]["details"]
    await _assert_nothing_written(services, before)


async def test_huge_strings_are_refused_without_being_echoed(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    before = await head_sequence(services.db)
    huge = "A" * 100_000

    responses = [
        await client.post(
            "/admin/api-keys",
            headers=headers(bootstrap_key),
            json={"role": "admin", "description": huge},
        ),
        await client.post(
            "/admin/policies",
            headers=headers(bootstrap_key),
            json={"name": "p", "description": huge, "effect": "deny", "rule": {}},
        ),
        await client.get(f"/audit/entries?resource={huge[:5000]}", headers=headers(bootstrap_key)),
    ]

    for response in responses:
        assert response.status_code == 422
        assert huge[:200] not in response.text
    await _assert_nothing_written(services, before)


@pytest.mark.parametrize(
    "path",
    ["/admin/api-keys/not-a-uuid", "/admin/policies/123", "/admin/policies/%27%20OR%201=1"],
)
async def test_non_uuid_ids_are_validation_errors(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, path: str
) -> None:
    before = await head_sequence(services.db)

    response = await client.get(path, headers=headers(bootstrap_key))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    await _assert_nothing_written(services, before)


async def test_well_formed_unknown_ids_are_not_found(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    response = await client.patch(
        "/admin/policies/00000000-0000-4000-8000-000000000000",
        headers=headers(bootstrap_key),
        json={"priority": 1},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "after_sequence=-1",
        "action=NOT_AN_ACTION",
        "from=yesterday",
        "actor_id=x",
    ],
)
async def test_invalid_audit_filters_are_refused(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, query: str
) -> None:
    response = await client.get(f"/audit/entries?{query}", headers=headers(bootstrap_key))
    assert response.status_code == 422
