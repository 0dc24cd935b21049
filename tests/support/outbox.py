"""The webhook outbox as a test reads it, and an incident change as the API makes one."""

from collections.abc import Sequence
from datetime import datetime

import httpx
from sqlalchemy import select

from ssbg.infrastructure.db.models import OutboxNotification
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.unit_of_work import AppDatabase
from tests.support.factories import headers

WEBHOOK_SECRET = "webhook-test-secret-7f3a"


async def outbox_rows(db: AppDatabase) -> Sequence[OutboxNotification]:
    async with db.transaction(write=False) as tx:
        statement = select(OutboxNotification).order_by(OutboxNotification.id)
        return (await tx.session.execute(statement)).scalars().all()


async def post_incident_level(
    http: httpx.AsyncClient,
    key: IssuedApiKey,
    level: int,
    reason: str,
    *,
    totp_at: datetime,
    base_url: str = "",
) -> httpx.Response:
    """``POST /admin/incident`` as ``key`` (a super_admin) with a TOTP code of ``totp_at``."""
    return await http.post(
        f"{base_url}/admin/incident",
        headers=headers(key, totp_at=totp_at),
        json={"level": level, "reason": reason},
    )
