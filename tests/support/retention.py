"""Legal holds and retention through the HTTP API, and backups made on given days."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx

from ssbg.domain.enums import BackupStatus
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.backups import get_record, upload
from tests.support.clock import FixedClock
from tests.support.factories import headers
from tests.support.keys import with_mfa


async def backups_at(
    client: httpx.AsyncClient,
    clock: FixedClock,
    owner: IssuedApiKey,
    moments: Iterable[datetime],
    *,
    source_system: str = "db-prod-1",
    classification: str = "INTERNAL",
) -> list[str]:
    """One backup at each moment (the clock set to it), in the order given; the clock is left
    at the last moment."""
    made = []
    for moment in moments:
        clock.set(moment)
        response = await upload(
            client,
            owner,
            f"{source_system} at {moment.isoformat()}".encode(),
            mode="raw",
            source_system=source_system,
            classification=classification,
        )
        assert response.status_code == 201, response.text
        made.append(str(response.json()["data"]["backup_id"]))
    return made


async def place_hold(
    client: httpx.AsyncClient,
    clock: FixedClock,
    admin: IssuedApiKey,
    backup_id: str,
    reason: str = "litigation hold LIT-2026-042",
) -> httpx.Response:
    return await client.post(
        f"/backups/{backup_id}/hold", headers=with_mfa(clock, admin), json={"reason": reason}
    )


async def release_hold(
    client: httpx.AsyncClient,
    clock: FixedClock,
    admin: IssuedApiKey,
    backup_id: str,
    reason: str = "LIT-2026-042 settled",
) -> httpx.Response:
    return await client.request(
        "DELETE",
        f"/backups/{backup_id}/hold",
        headers=with_mfa(clock, admin),
        json={"reason": reason},
    )


async def create_rule(
    client: httpx.AsyncClient, admin: IssuedApiKey, **fields: Any
) -> dict[str, Any]:
    body = {"name": "keep-3", "source_systems": ["db-*"], **fields}
    response = await client.post("/admin/retention-rules", headers=headers(admin), json=body)
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()["data"]
    return rule


async def apply_retention(
    client: httpx.AsyncClient,
    admin: IssuedApiKey,
    *,
    dry_run: bool,
    backup_ids: list[str] | None = None,
    extra_headers: dict[str, str] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"dry_run": dry_run}
    if backup_ids is not None:
        body["backup_ids"] = backup_ids
    return await client.post(
        "/admin/retention/apply",
        headers={**headers(admin), **(extra_headers or {})},
        json=body,
    )


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["backup_id"] for entry in entries]


async def status_of(services: Services, backup_id: str | UUID) -> BackupStatus:
    record = await get_record(services, backup_id)
    assert record is not None
    return record.status


async def quarantine(services: Services, backup_id: str) -> None:
    """``ACTIVE → QUARANTINED`` the way a failed integrity check does it."""
    async with services.db.transaction(write=True) as tx:
        await services.backups.lifecycle.move(
            tx,
            UUID(backup_id),
            BackupStatus.ACTIVE,
            BackupStatus.QUARANTINED,
            None,
            reason="INTEGRITY_FAILURE",
        )
