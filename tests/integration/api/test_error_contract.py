"""Every failure path renders the contract's envelope with a request id and no internals."""

import httpx
import pytest
from fastapi import FastAPI

from ssbg.api.app import create_app
from ssbg.services.container import Services


async def test_unknown_path_is_a_contract_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")

    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "NOT_FOUND"
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]


async def test_wrong_method_is_a_contract_405(client: httpx.AsyncClient) -> None:
    response = await client.put("/health")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/backups", "GET, POST"),
        ("POST", "/api/v1/backups/6f1c2b0e-3a4d-4e5f-8a9b-0c1d2e3f4a5b", "DELETE, GET"),
        ("PATCH", "/api/v1/restores/7a2d3c1f-4b5e-4f60-9bac-1d2e3f4a5b6c/approve", "POST"),
        ("DELETE", "/api/v1/health/ready", "GET"),
        ("POST", "/api/v1/health", "GET"),
        ("POST", "/metrics", "GET"),
        # a key version is a path convertor: "rotate" is no version, so GET is not allowed
        ("GET", "/api/v1/admin/keys/rotate", "POST"),
        ("PUT", "/api/v1/admin/keys/P-001", "GET"),
    ],
)
async def test_method_not_allowed_names_the_allowed_methods(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, f"http://ssbg.test{path}")

    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    error = response.json()["error"]
    assert error["code"] == "METHOD_NOT_ALLOWED"
    assert error["details"] == {}
    assert error["request_id"] == response.headers["X-Request-ID"]


async def test_a_given_request_id_is_echoed_and_a_missing_one_generated(
    client: httpx.AsyncClient,
) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "trace-42"})
    generated = await client.get("/health")
    refused = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})

    assert echoed.headers["X-Request-ID"] == "trace-42"
    assert len(generated.headers["X-Request-ID"]) == 36
    assert refused.headers["X-Request-ID"] != "bad id\twith spaces"


async def test_unhandled_exceptions_become_internal_error_without_library_text(
    services: Services,
) -> None:
    app: FastAPI = create_app(services=services)

    @app.get("/api/v1/boom")
    async def boom() -> None:
        raise RuntimeError("psycopg: password=hunter2 at /srv/ssbg/secret.py line 12")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ssbg.test") as http:
        response = await http.get("/api/v1/boom", headers={"X-Request-ID": "boom-1"})

    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "INTERNAL_ERROR",
            "message": "Internal error.",
            "details": {},
            "request_id": "boom-1",
        }
    }
    assert response.headers["X-Request-ID"] == "boom-1"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


async def test_openapi_declares_the_error_model(client: httpx.AsyncClient) -> None:
    openapi = (await client.get("http://ssbg.test/openapi.json")).json()
    docs = await client.get("http://ssbg.test/docs")

    assert docs.status_code == 200
    assert "ErrorResponse" in openapi["components"]["schemas"]
    create_key = openapi["paths"]["/api/v1/admin/api-keys"]["post"]["responses"]
    assert create_key["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    assert "403" in create_key
    assert "422" in create_key
