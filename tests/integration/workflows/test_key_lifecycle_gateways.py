"""Two gateway processes on one PostgreSQL database and one key store: a rotation made on one
is used by the other's next backup without a restart, and a shred made on one is refused by
the other, which had the destroyed key in its memory."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.backups import get_record
from tests.support.factories import create_api_key, headers
from tests.support.processes import GatewayProcess, gateway_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.own_key_store]


def with_code(key: IssuedApiKey, at: datetime) -> dict[str, str]:
    """The key's TOTP code for the step of ``at`` (the gateways keep real time)."""
    assert key.totp_secret is not None
    return {**headers(key), "X-MFA-Token": pyotp.TOTP(key.totp_secret).at(at)}


async def upload(http: httpx.AsyncClient, base: str, key: IssuedApiKey, payload: bytes) -> str:
    response = await http.post(
        f"{base}/backups",
        params={"classification": "INTERNAL", "source_system": "erp", "filename": "x"},
        headers={**headers(key), "Content-Type": "application/octet-stream"},
        content=payload,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["backup_id"])


async def restore(
    http: httpx.AsyncClient, base: str, key: IssuedApiKey, backup_id: str
) -> httpx.Response:
    return await http.post(
        f"{base}/restores",
        headers=headers(key),
        json={"backup_id": backup_id, "justification": "INC-1: two gateways"},
    )


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_rotation_and_a_shred_on_one_gateway_hold_on_the_other(
    services: Services, settings: Settings, bootstrap_key: IssuedApiKey, tmp_path: Path
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    env = gateway_env(settings, TEST_KEY_PASSWORD)
    one = GatewayProcess(env, tmp_path, name="one")
    other = GatewayProcess(env, tmp_path, name="other")
    try:
        one.start()
        other.start()
        async with httpx.AsyncClient(timeout=60) as http:
            old = await upload(http, other.base_url, operator, b"sealed under P-001")
            # The other gateway unwraps with P-001 once: the key is in its memory now.
            assert (await restore(http, other.base_url, admin, old)).status_code == 201
            now = datetime.now(UTC)
            rotated = await http.post(
                f"{one.base_url}/admin/keys/rotate",
                headers=with_code(bootstrap_key, now),
                json={"reason": "rotated on gateway one"},
            )
            new = await upload(http, other.base_url, operator, b"sealed under P-002")
            shredded = await http.post(
                f"{one.base_url}/admin/keys/P-001/crypto-shred",
                headers=with_code(bootstrap_key, now + timedelta(seconds=30)),
                json={"confirmation": "DESTROY P-001", "reason": "end of retention"},
            )
            refused = await restore(http, other.base_url, admin, old)
            kept = await restore(http, other.base_url, admin, new)
    finally:
        one.close()
        other.close()

    assert rotated.status_code == 201, rotated.text
    assert (await get_record(services, new)).key_version == "P-002"  # type: ignore[union-attr]
    assert shredded.status_code == 200, shredded.text
    assert (refused.status_code, refused.json()["error"]["code"]) == (410, "CRYPTO_SHREDDED")
    assert kept.status_code == 201, kept.text
