"""The OpenAPI description is the truth (issue 16, SPEC §4, §13.3).

First what the published description declares for every operation — the statuses and headers
its dependencies bring, the one error schema, exact integer bounds —, then the places where
the server disagreed with it and was changed (each failed before its fix). The whole contract
is exercised by ``make schemathesis``; these tests keep its conclusions in ``make test``.
"""

from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from ssbg.api.app import create_app
from ssbg.api.dependencies import requirement_of
from ssbg.domain.permissions import allowed_in_lockdown
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.settings import Settings
from tests.support.clock import FixedClock
from tests.support.factories import headers

ERROR_REF = "#/components/schemas/ErrorResponse"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _calls(dependant: Any) -> list[Any]:
    found = []
    for sub in dependant.dependencies:
        found.append(sub.call)
        found.extend(_calls(sub))
    return found


def requirements(document: dict[str, Any]) -> dict[tuple[str, str], list[Any]]:
    """(method, path) → the ``require(...)`` checks of that route, from the app itself."""
    app = create_app(Settings())
    found: dict[tuple[str, str], list[Any]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.include_in_schema:
            checks = [r for r in map(requirement_of, _calls(route.dependant)) if r is not None]
            for method in context.methods or ():
                found[(method, context.path_format)] = checks
    return found


def test_every_error_response_is_the_envelope_with_a_request_id(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            assert "X-Request-ID" in response.get("headers", {}), (method, path, status)
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, status)
                assert response["description"].replace(" / ", "").replace("_", "").isalnum()
        assert "500" in operation["responses"], (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_operation_with_an_input_declares_422(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        has_input = bool(operation.get("parameters")) or "requestBody" in operation
        assert ("422" in operation["responses"]) == has_input, (method, path)


def test_every_keyed_operation_declares_the_refusals_of_its_key_and_role(
    document: dict[str, Any],
) -> None:
    checks = requirements(document)
    keyed = 0
    for method, path, operation in operations(document):
        responses = operation["responses"]
        if operation.get("security") != [{"ApiKey": []}]:
            assert path in {"/api/v1/health", "/api/v1/health/ready"}, (method, path)
            continue
        keyed += 1
        assert {"401", "429", "503"} <= set(responses), (method, path)
        assert "AUTH_INVALID_KEY" in responses["401"]["description"]
        assert "Retry-After" in responses["429"]["headers"], (method, path)
        for requirement in checks[(method, path)]:
            assert "FORBIDDEN_ROLE" in responses["403"]["description"], (method, path)
            locked = not allowed_in_lockdown(requirement.permission)
            assert ("423" in responses) == locked, (method, path)
            if requirement.mfa:
                assert "AUTH_MFA_REQUIRED" in responses["401"]["description"], (method, path)
    assert keyed == len(operations(document)) - 2


def test_the_mfa_header_is_declared_exactly_where_a_code_is_read(
    document: dict[str, Any],
) -> None:
    reads_code = {
        ("POST", "/api/v1/admin/api-keys"),
        ("POST", "/api/v1/admin/incident"),
        ("POST", "/api/v1/admin/keys/rotate"),
        ("POST", "/api/v1/admin/keys/rewrap"),
        ("POST", "/api/v1/admin/keys/{version}/crypto-shred"),
        ("POST", "/api/v1/backups"),
        ("DELETE", "/api/v1/backups/{backup_id}"),
        ("POST", "/api/v1/backups/{backup_id}/release"),
        ("POST", "/api/v1/backups/{backup_id}/hold"),
        ("DELETE", "/api/v1/backups/{backup_id}/hold"),
        ("POST", "/api/v1/admin/retention/apply"),
        ("POST", "/api/v1/restores"),
        ("POST", "/api/v1/restores/{restore_id}/approve"),
        ("POST", "/api/v1/restores/{restore_id}/reject"),
        ("POST", "/api/v1/restores/{restore_id}/token"),
    }
    declared = {
        (method, path)
        for method, path, operation in operations(document)
        if any(p["name"] == "X-MFA-Token" for p in operation.get("parameters", []))
    }
    assert declared == reads_code
    assert not any(
        p["name"] == "X-API-Key"
        for _m, _p, operation in operations(document)
        for p in operation.get("parameters", [])
    )


def test_created_resources_declare_their_location(document: dict[str, Any]) -> None:
    for path in ("/api/v1/backups", "/api/v1/restores"):
        created = document["paths"][path]["post"]["responses"]["201"]
        assert created["headers"]["Location"] == {"$ref": "#/components/headers/Location"}


def test_integer_bounds_are_exact(document: dict[str, Any]) -> None:
    validate = document["components"]["schemas"]["ValidateRequest"]["properties"]
    assert validate["to_sequence"]["anyOf"][0]["maximum"] == 2**63 - 1

    def floats(node: Any) -> list[Any]:
        if isinstance(node, dict):
            own = [v for k, v in node.items() if k in ("minimum", "maximum")]
            return [v for v in own if isinstance(v, float)] + floats(list(node.values()))
        if isinstance(node, list):
            return [f for item in node for f in floats(item)]
        return []

    assert floats(document) == []


# -- Where the server disagreed with its description ------------------------------------------


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-01-01", "2026-01-01 08:00:00Z"])
async def test_a_timestamp_parameter_takes_only_an_rfc3339_date_time(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, value: str
) -> None:
    response = await client.get(
        "/audit/entries", params={"to": value}, headers=headers(bootstrap_key)
    )

    assert response.status_code == 422, response.text
    assert "to" in response.json()["error"]["details"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"classification": "", "source_system": "db-1"}, "classification"),
        ({"classification": "INTERNAL", "source_system": "db-1", "filename": ""}, "filename"),
        (
            {"classification": "INTERNAL", "source_system": "db-1", "filename": "a\x01/b"},
            "filename",
        ),
        (
            {"classification": "INTERNAL", "source_system": "db-1", "filename": "d/" * 130},
            "filename",
        ),
    ],
)
async def test_raw_upload_fields_are_held_to_their_declared_form(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, params: dict[str, str], field: str
) -> None:
    response = await client.post(
        "/backups",
        params=params,
        content=b"payload",
        headers={**headers(bootstrap_key), "Content-Type": "application/octet-stream"},
    )

    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["details"]


async def test_an_empty_mfa_header_is_refused_not_ignored(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    response = await client.post(
        "/backups",
        params={"classification": "INTERNAL", "source_system": "db-1"},
        content=b"payload",
        headers={
            **headers(bootstrap_key),
            "Content-Type": "application/octet-stream",
            "X-MFA-Token": "",
        },
    )

    assert response.status_code == 422, response.text
    assert "X-MFA-Token" in response.json()["error"]["details"]


@pytest.mark.parametrize("path", ["/backups", "/admin/alerts"])
async def test_an_empty_cursor_is_refused(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, path: str
) -> None:
    response = await client.get(path, params={"cursor": ""}, headers=headers(bootstrap_key))

    assert response.status_code == 422, response.text
    assert "cursor" in response.json()["error"]["details"]


async def test_an_audit_range_past_the_head_is_404_on_validate_and_export(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    beyond = 10**12
    validate = await client.post(
        "/audit/validate", json={"from_sequence": beyond}, headers=headers(bootstrap_key)
    )
    export = await client.get(
        "/audit/export", params={"from_sequence": beyond}, headers=headers(bootstrap_key)
    )

    for response in (validate, export):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "NOT_FOUND"
        assert "from_sequence" in response.json()["error"]["details"]


async def test_a_json_integer_may_be_written_with_a_zero_fraction_but_not_as_text(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    def policy(priority: object) -> dict[str, object]:
        return {"name": f"p-{priority!s}", "effect": "deny", "is_active": False, "rule": {},
                "priority": priority}  # fmt: skip

    whole = await client.post("/admin/policies", json=policy(7.0), headers=headers(bootstrap_key))
    text = await client.post("/admin/policies", json=policy("7"), headers=headers(bootstrap_key))
    fraction = await client.post(
        "/admin/policies", json=policy(7.5), headers=headers(bootstrap_key)
    )

    assert whole.status_code == 201, whole.text
    assert whole.json()["data"]["priority"] == 7
    assert text.status_code == 422
    assert fraction.status_code == 422


@pytest.mark.parametrize("entry", [" 10.0.0.1", "10.0.0.0/255.0.0.0", "::ffff:10.0.0.1"])
async def test_an_allowed_ips_entry_outside_the_declared_grammar_is_refused(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, entry: str
) -> None:
    response = await client.post(
        "/admin/api-keys",
        json={"role": "operator", "description": "probe", "allowed_ips": [entry]},
        headers=headers(bootstrap_key),
    )

    assert response.status_code == 422, response.text
    assert any(name.startswith("allowed_ips") for name in response.json()["error"]["details"])


async def test_a_justification_is_measured_and_stored_without_surrounding_space(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    short = await client.post(
        "/restores",
        json={"backup_id": "6f1c2b0e-3a4d-4e5f-8a9b-0c1d2e3f4a5b", "justification": f"{' ' * 8}ab"},
        headers=headers(bootstrap_key, totp_at=clock.now()),
    )

    assert short.status_code == 422, short.text
    assert "justification" in short.json()["error"]["details"]
