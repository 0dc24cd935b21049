"""Leases renewed by a clock ahead of ours (``ssbg.domain.leases``), for any leased aggregate:
a row with ``id``, ``status``, ``updated_at`` (when its lease was last renewed) and
``lease_expires_at`` — backups while PROCESSING, restore requests while VERIFYING."""

from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession


async def list_renewed_after(
    session: AsyncSession, model: Any, status: Enum, after: datetime, limit: int
) -> Sequence[tuple[UUID, datetime, datetime]]:
    """``(id, renewed at, lease end)`` of rows in ``status`` whose lease was renewed after
    ``after``."""
    result = await session.execute(
        select(model.id, model.updated_at, model.lease_expires_at)
        .where(
            model.status == status,
            model.updated_at > after,
            model.lease_expires_at.is_not(None),
        )
        .limit(limit)
    )
    return [(row_id, renewed, ends) for row_id, renewed, ends in result.all() if ends]


async def restart_lease(
    session: AsyncSession,
    model: Any,
    status: Enum,
    row_id: UUID,
    renewed_at: datetime,
    until: datetime,
    now: datetime,
) -> bool:
    """Count a lease renewed at ``renewed_at`` again from ``now`` (to end at ``until``), unless
    it was renewed or the row moved on meanwhile."""
    result = await session.execute(
        update(model)
        .where(model.id == row_id, model.status == status, model.updated_at == renewed_at)
        .values(lease_expires_at=until, updated_at=now)
    )
    return bool(getattr(result, "rowcount", 0) == 1)
