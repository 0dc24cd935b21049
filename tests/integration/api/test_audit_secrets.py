"""No raw API key or TOTP secret ever lands in the audit log (or in an exported bundle)."""

import base64
import hashlib

import httpx
import pytest
from sqlalchemy import String, cast, select

from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit_chain import ENTRIES
from tests.support.clock import FixedClock
from tests.support.factories import headers

# The search casts every stored column to text, which each dialect renders its own way.
pytestmark = pytest.mark.both_backends


async def test_no_raw_key_or_totp_secret_appears_in_any_audit_entry(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    assert bootstrap_key.totp_secret is not None
    secrets = [bootstrap_key.api_key, bootstrap_key.totp_secret]
    root = headers(bootstrap_key)

    # Every route of the foundation and of this issue, the failures included.
    issued: dict[str, dict[str, str]] = {}
    for role in ("operator", "auditor", "admin", "super_admin"):
        response = await client.post(
            "/admin/api-keys",
            json={"role": role, "description": f"{role} key", "allowed_ips": ["192.0.2.0/24"]},
            # a super_admin key needs the issuer's code
            headers=headers(bootstrap_key, totp_at=clock.now()) if role == "super_admin" else root,
        )
        assert response.status_code == 201
        issued[role] = response.json()["data"]
        secrets.append(issued[role]["api_key"])
        if issued[role].get("totp_secret"):
            secrets.append(issued[role]["totp_secret"])
    keys = {role: {"X-API-Key": data["api_key"]} for role, data in issued.items()}
    await client.get("/admin/api-keys", headers=root)
    await client.get(f"/admin/api-keys/{issued['operator']['key_id']}", headers=root)
    await client.delete(
        f"/admin/api-keys/{issued['operator']['key_id']}",
        params={"reason": "rotated"},
        headers=root,
    )
    policy = await client.post(
        "/admin/policies",
        json={
            "name": "no-nights",
            "description": "",
            "effect": "deny",
            "priority": 10,
            "rule": {"operations": ["restore"], "hours": "06-22"},
        },
        headers=keys["admin"],
    )
    assert policy.status_code == 201, policy.text
    await client.patch(
        f"/admin/policies/{policy.json()['data']['policy_id']}",
        json={"priority": 5},
        headers=keys["admin"],
    )
    for presented in (
        issued["operator"]["api_key"],  # revoked
        "ssbg_" + "0" * 32,  # unknown
        issued["auditor"]["api_key"][:-1],  # malformed
        "",
    ):
        assert (await client.get("/me", headers={"X-API-Key": presented})).status_code == 401
    await client.post("/audit/validate", headers=keys["super_admin"])  # MFA not asked: fine
    for role, key in keys.items():
        await client.get("/me", headers=key)
        await client.get("/health/detailed", headers=key)
        await client.get("/audit/entries", headers=key)
        await client.get("/audit/checkpoints", headers=key)
        await client.post("/audit/validate", json={"from_sequence": 1}, headers=key)
        await client.get("/audit/export", headers=key)
        await client.post(
            "/admin/api-keys", json={"role": "operator", "description": role}, headers=key
        )
    export = await client.get("/audit/export", headers=keys["auditor"])
    assert export.status_code == 200

    async with services.db.engine.connect() as connection:
        rows = (await connection.execute(select(*(cast(c, String) for c in ENTRIES.columns)))).all()
    assert len(rows) > 30
    stored = "\n".join(" ".join(str(value) for value in row) for row in rows)
    for text in (stored, export.text):
        for secret in secrets:
            for form in _forms(secret):
                assert form not in text


def _forms(secret: str) -> list[str]:
    """The secret as given, in lower/upper case, and as it might be encoded."""
    raw = secret.encode()
    return [
        secret,
        secret.lower(),
        secret.upper(),
        base64.b64encode(raw).decode(),
        raw.hex(),
        hashlib.sha256(raw).hexdigest() if not secret.startswith("ssbg_") else secret[5:],
    ]
