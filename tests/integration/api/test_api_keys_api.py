import json
from datetime import timedelta
from uuid import UUID

import httpx
import pyotp
import pytest
from sqlalchemy import select

from ssbg.infrastructure.db.models import ApiKey
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.clock import FixedClock
from tests.support.factories import headers


@pytest.mark.parametrize("role", ["admin", "super_admin"])
async def test_admin_keys_get_a_totp_secret_exactly_once(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
    role: str,
) -> None:
    created = await client.post(
        "/admin/api-keys",
        headers=headers(bootstrap_key, totp_at=clock.now()),
        json={"role": role, "description": "on-call admin", "department": "ops"},
    )

    assert created.status_code == 201
    data = created.json()["data"]
    assert data["api_key"].startswith("ssbg_")
    assert len(data["api_key"]) == 37
    assert data["mfa_enrolled"] is True
    assert pyotp.TOTP(data["totp_secret"]).now().isdigit()
    assert data["totp_uri"].startswith("otpauth://totp/SSBG:")
    listed = await client.get("/admin/api-keys", headers=headers(bootstrap_key))
    fetched = await client.get(f"/admin/api-keys/{data['key_id']}", headers=headers(bootstrap_key))
    for later in (listed.text, fetched.text):
        assert data["api_key"] not in later
        assert data["totp_secret"] not in later
        assert "totp_secret" not in later
        assert 'api_key"' not in later


@pytest.mark.parametrize("role", ["operator", "auditor"])
async def test_operator_and_auditor_keys_have_no_totp_secret(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, role: str
) -> None:
    created = await client.post(
        "/admin/api-keys", headers=headers(bootstrap_key), json={"role": role, "description": "x"}
    )

    data = created.json()["data"]
    assert created.status_code == 201
    assert data["totp_secret"] is None
    assert data["totp_uri"] is None
    assert data["mfa_enrolled"] is False


@pytest.mark.both_backends
async def test_the_new_key_works_and_is_stored_only_as_a_hash(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    created = await client.post(
        "/admin/api-keys",
        headers=headers(bootstrap_key),
        json={"role": "admin", "description": "second admin"},
    )
    data = created.json()["data"]

    me = await client.get("/me", headers={"X-API-Key": data["api_key"]})

    assert me.json()["data"]["role"] == "admin"
    async with services.db.transaction(write=False) as tx:
        row = (
            await tx.session.execute(
                select(ApiKey).where(ApiKey.id == UUID(me.json()["data"]["key_id"]))
            )
        ).scalar_one()
    stored = json.dumps({c.key: repr(getattr(row, c.key)) for c in ApiKey.__table__.columns})
    assert data["api_key"] not in stored
    assert data["api_key"].removeprefix("ssbg_") not in stored
    assert data["totp_secret"] not in stored
    assert row.totp_secret_encrypted is not None
    assert data["totp_secret"].encode() not in row.totp_secret_encrypted


@pytest.mark.both_backends
async def test_creation_and_revocation_are_audited_without_secrets(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    created = (
        await client.post(
            "/admin/api-keys",
            headers=headers(bootstrap_key),
            json={"role": "admin", "description": "temp", "allowed_ips": ["10.0.0.0/8"]},
        )
    ).json()["data"]

    revoked = await client.delete(
        f"/admin/api-keys/{created['key_id']}?reason=left the team", headers=headers(bootstrap_key)
    )

    assert revoked.status_code == 200
    assert revoked.json()["data"]["status"] == "REVOKED"
    creates = await audit_entries(services.db, "API_KEY_CREATE")
    revokes = await audit_entries(services.db, "API_KEY_REVOKE")
    assert creates[-1].resource == f"api_key:{created['key_id']}"
    assert creates[-1].actor_id == bootstrap_key.record.id
    assert creates[-1].details["allowed_ips"] == ["10.0.0.0/8"]
    assert revokes[-1].details == {"role": "admin", "reason": "left the team"}
    everything = json.dumps([e.details for e in await audit_entries(services.db)])
    assert created["api_key"] not in everything
    assert created["totp_secret"] not in everything


@pytest.mark.both_backends
async def test_revoking_twice_is_an_invalid_transition(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    created = (
        await client.post(
            "/admin/api-keys",
            headers=headers(bootstrap_key),
            json={"role": "operator", "description": "x"},
        )
    ).json()["data"]
    path = f"/admin/api-keys/{created['key_id']}"

    assert (await client.delete(path, headers=headers(bootstrap_key))).status_code == 200
    again = await client.delete(path, headers=headers(bootstrap_key))

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "INVALID_STATE_TRANSITION"


@pytest.mark.both_backends
@pytest.mark.both_backends
async def test_a_super_admin_key_is_not_created_without_mfa(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    response = await client.post(
        "/admin/api-keys",
        headers=headers(bootstrap_key),
        json={"role": "super_admin", "description": "second super_admin"},
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_MFA_REQUIRED"
    failures = await audit_entries(services.db, "MFA_FAILURE")
    assert [(e.actor_id, e.details["reason"]) for e in failures] == [
        (bootstrap_key.record.id, "MISSING")
    ]
    assert len(await audit_entries(services.db, "API_KEY_CREATE")) == 1  # the bootstrap key
    listed = await client.get("/admin/api-keys", headers=headers(bootstrap_key))
    assert [key["role"] for key in listed.json()["data"]] == ["super_admin"]


async def test_a_super_admin_key_is_not_created_with_a_wrong_code(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    stale = pyotp.TOTP(bootstrap_key.totp_secret or "").at(clock.now() - timedelta(minutes=5))

    response = await client.post(
        "/admin/api-keys",
        headers={**headers(bootstrap_key), "X-MFA-Token": stale},
        json={"role": "super_admin", "description": "second super_admin"},
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_MFA_INVALID"
    assert len(await audit_entries(services.db, "API_KEY_CREATE")) == 1


async def test_a_super_admin_key_is_created_with_the_issuers_code(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    response = await client.post(
        "/admin/api-keys",
        headers=headers(bootstrap_key, totp_at=clock.now()),
        json={"role": "super_admin", "description": "second super_admin"},
    )

    assert response.status_code == 201
    assert response.json()["data"]["role"] == "super_admin"
    assert [e.actor_id for e in await audit_entries(services.db, "MFA_SUCCESS")] == [
        bootstrap_key.record.id
    ]


@pytest.mark.parametrize("role", ["operator", "auditor", "admin"])
async def test_keys_of_other_roles_need_no_mfa(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, role: str
) -> None:
    response = await client.post(
        "/admin/api-keys", headers=headers(bootstrap_key), json={"role": role, "description": "x"}
    )

    assert response.status_code == 201
    assert await audit_entries(services.db, "MFA_FAILURE") == []


async def test_the_last_usable_super_admin_cannot_be_revoked(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    response = await client.delete(
        f"/admin/api-keys/{bootstrap_key.record.id}", headers=headers(bootstrap_key)
    )

    assert response.status_code == 409
    assert (await client.get("/me", headers=headers(bootstrap_key))).status_code == 200


async def test_unknown_key_id_is_not_found(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey
) -> None:
    response = await client.get(
        "/admin/api-keys/00000000-0000-4000-8000-000000000000", headers=headers(bootstrap_key)
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "root", "description": "x"}, "role"),
        ({"role": "admin"}, "description"),
        ({"role": "admin", "description": ""}, "description"),
        ({"role": "admin", "description": "x", "allowed_ips": ["10.0.0.0/33"]}, "allowed_ips"),
        ({"role": "admin", "description": "x", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"role": "admin", "description": "x", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
    ],
)
async def test_invalid_key_requests_are_refused_and_create_nothing(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    body: dict[str, object],
    field: str,
) -> None:
    before = await client.get("/admin/api-keys", headers=headers(bootstrap_key))

    response = await client.post("/admin/api-keys", headers=headers(bootstrap_key), json=body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    # a list's entry is named with its index ("allowed_ips.0")
    assert {name.split(".")[0] for name in response.json()["error"]["details"]} == {field}
    after = await client.get("/admin/api-keys", headers=headers(bootstrap_key))
    assert after.json()["meta"]["total"] == before.json()["meta"]["total"]


@pytest.mark.both_backends
async def test_expired_keys_are_listed_as_expired(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    expires = (clock.now() + timedelta(minutes=5)).isoformat()
    created = (
        await client.post(
            "/admin/api-keys",
            headers=headers(bootstrap_key),
            json={"role": "operator", "description": "short-lived", "expires_at": expires},
        )
    ).json()["data"]
    clock.advance(minutes=6)

    fetched = await client.get(
        f"/admin/api-keys/{created['key_id']}", headers=headers(bootstrap_key)
    )

    assert fetched.json()["data"]["status"] == "EXPIRED"
