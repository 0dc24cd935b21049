"""Header values that are not ASCII (SPEC §13.3) get the ordinary answer of that header, and
are audited like any other failure: never a 500. Headers go out as raw bytes, as a client
could send them; the server decodes them as Latin-1."""

import httpx

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.factories import create_api_key

SUPERSCRIPT_DIGITS = b"\xb9\xb2\xb3\xb9\xb2\xb3"  # "¹²³¹²³": str.isdigit() is True


async def test_unicode_digits_as_mfa_token_are_an_audited_mfa_invalid(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    response = await client.post(
        "/admin/incident",
        headers=[
            (b"X-API-Key", bootstrap_key.api_key.encode()),
            (b"X-MFA-Token", SUPERSCRIPT_DIGITS),
        ],
        json={"level": 1, "reason": "probe"},
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_MFA_INVALID"
    failures = await audit_entries(services.db, "MFA_FAILURE")
    assert [(e.actor_id, e.details["reason"]) for e in failures] == [
        (bootstrap_key.record.id, "INVALID_OR_REPLAYED")
    ]


async def test_non_ascii_api_key_is_an_audited_invalid_key(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    raw = bootstrap_key.api_key.encode()[:-6] + SUPERSCRIPT_DIGITS

    response = await client.get("/me", headers=[(b"X-API-Key", raw)])

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_INVALID_KEY"
    failures = await audit_entries(services.db, "AUTH_FAILURE")
    assert [e.details["reason"] for e in failures] == ["MALFORMED"]


async def test_non_ascii_idempotency_key_is_a_validation_error(
    client: httpx.AsyncClient, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)

    response = await client.post(
        "/backups",
        params={"source_system": "db1", "classification": "INTERNAL"},
        headers=[
            (b"X-API-Key", operator.api_key.encode()),
            (b"Idempotency-Key", b"key-" + SUPERSCRIPT_DIGITS),
            (b"Content-Type", b"application/octet-stream"),
        ],
        content=b"payload",
    )

    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["error"]["details"]


async def test_non_ascii_restore_token_is_the_ordinary_not_found(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)

    response = await client.get(
        "/restores/00000000-0000-4000-8000-000000000000/download",
        headers=[
            (b"X-API-Key", admin.api_key.encode()),
            (b"X-Restore-Token", SUPERSCRIPT_DIGITS * 8),
        ],
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "RESTORE_NOT_FOUND"


async def test_non_ascii_request_id_is_replaced(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    response = await client.get(
        "/me",
        headers=[
            (b"X-API-Key", bootstrap_key.api_key.encode()),
            (b"X-Request-ID", b"req-" + SUPERSCRIPT_DIGITS),
        ],
    )

    assert response.status_code == 200
    assert response.headers["X-Request-ID"].isascii()
    assert response.json()["meta"]["request_id"] == response.headers["X-Request-ID"]
