"""The MFA dependency later routes declare: ``require(permission, mfa=True)``."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

import httpx
import pyotp
import pytest
from fastapi import Depends

from ssbg.api.app import create_app
from ssbg.api.dependencies import require
from ssbg.domain.enums import Role
from ssbg.domain.identity import Principal
from ssbg.domain.permissions import Permission
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers


@pytest.fixture
async def mfa_client(
    services: Services, bootstrap_key: IssuedApiKey
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=services)

    @app.post("/api/v1/test/guarded")
    async def guarded(
        principal: Annotated[Principal, Depends(require(Permission.POLICY_MANAGE, mfa=True))],
    ) -> dict[str, str]:
        return {"key_id": str(principal.key_id)}

    transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as http:
        yield http


async def test_missing_code_is_mfa_required(
    mfa_client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)

    response = await mfa_client.post("/test/guarded", headers=headers(admin))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_MFA_REQUIRED"


async def test_valid_code_passes_and_its_replay_fails(
    mfa_client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    with_code = headers(admin, totp_at=clock.now())

    first = await mfa_client.post("/test/guarded", headers=with_code)
    replay = await mfa_client.post("/test/guarded", headers=with_code)

    assert first.status_code == 200
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "AUTH_MFA_INVALID"
    assert [e.actor_id for e in await audit_entries(services.db, "MFA_SUCCESS")] == [
        admin.record.id
    ]


async def test_wrong_code_is_mfa_invalid(
    mfa_client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    stale = pyotp.TOTP(admin.totp_secret or "").at(clock.now() - timedelta(minutes=5))

    response = await mfa_client.post(
        "/test/guarded", headers={**headers(admin), "X-MFA-Token": stale}
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_MFA_INVALID"


async def test_role_is_checked_before_mfa(
    mfa_client: httpx.AsyncClient, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)

    response = await mfa_client.post("/test/guarded", headers=headers(operator))

    assert response.status_code == 403
    assert await audit_entries(services.db, "MFA_FAILURE") == []
