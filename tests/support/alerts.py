"""Raising an alert as a person would: a change that a detection rule watches."""

import httpx

from ssbg.services.api_key_service import IssuedApiKey
from tests.support.factories import headers


async def raise_m9(client: httpx.AsyncClient, key: IssuedApiKey, name: str = "p") -> str:
    """A policy change (of the policy ``name``): alert M9 (MEDIUM, level 1). Returns its id."""
    created = await client.post(
        "/admin/policies",
        headers=headers(key),
        json={"name": name, "effect": "deny", "is_active": False, "rule": {}},
    )
    assert created.status_code == 201, created.text
    listed = await client.get("/admin/alerts", params={"rule_id": "M9"}, headers=headers(key))
    [alert_id] = [
        alert["alert_id"]
        for alert in listed.json()["data"]
        if alert["context"]["name"] == name and alert["status"] != "RESOLVED"
    ]
    return str(alert_id)
