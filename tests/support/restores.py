"""Helpers to request and download restores through the HTTP API."""

from datetime import datetime
from uuid import UUID

import httpx

from ssbg.domain.incident import IncidentLevel
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.backups import upload
from tests.support.factories import actor, headers

JUSTIFICATION = "INC-4711: database restore after disk failure"


async def backup_of(
    client: httpx.AsyncClient,
    owner: IssuedApiKey,
    payload: bytes,
    *,
    classification: str = "INTERNAL",
    filename: str = "dump.sql",
) -> str:
    response = await upload(
        client, owner, payload, mode="raw", classification=classification, filename=filename
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["backup_id"])


async def request_restore(
    client: httpx.AsyncClient,
    requester: IssuedApiKey,
    backup_id: str | UUID,
    *,
    totp_at: datetime | None = None,
    justification: str = JUSTIFICATION,
) -> httpx.Response:
    return await client.post(
        "/restores",
        headers=headers(requester, totp_at=totp_at),
        json={"backup_id": str(backup_id), "justification": justification},
    )


async def download(
    client: httpx.AsyncClient, requester: IssuedApiKey, restore: dict[str, object]
) -> httpx.Response:
    link = restore["download"]
    assert isinstance(link, dict)
    return await client.get(
        f"/restores/{restore['restore_id']}/download",
        headers={**headers(requester), "X-Restore-Token": str(link["token"])},
    )


async def set_incident_level(
    services: Services, super_admin: IssuedApiKey, level: IncidentLevel
) -> None:
    await services.incidents.set_level(actor(super_admin), level, "test")
