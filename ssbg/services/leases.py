"""The sweeps' half of the lease rule of :mod:`ssbg.domain.leases`: before looking for lapsed
leases, a sweep counts again from now every lease renewed after now (the clock went back).

Each lease is restarted by a compare-and-set on when it was renewed, so a holder renewing at
the same moment wins (its lease is already counted from the new clock) and several replicas
sweeping at once restart each lease at most once each, harmlessly.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

import structlog

from ssbg.domain.leases import ahead_of, restarted_lease
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

BATCH = 100
log = structlog.get_logger("ssbg.leases")


class LeasedRows(Protocol):
    async def list_renewed_after(
        self, after: datetime, limit: int
    ) -> Sequence[tuple[UUID, datetime, datetime]]: ...

    async def restart_lease(
        self, row_id: UUID, renewed_at: datetime, until: datetime, now: datetime, /
    ) -> bool: ...


async def restart_leases_renewed_after(
    db: AppDatabase, now: datetime, rows: Callable[[UnitOfWork], LeasedRows], kind: str
) -> list[UUID]:
    """Count again from ``now`` every lease of ``rows`` renewed ahead of ``now`` (by more
    than the skew tolerance); their ids."""
    async with db.transaction(write=False) as tx:
        ahead = await rows(tx).list_renewed_after(ahead_of(now), BATCH)
    restarted: list[UUID] = []
    for row_id, renewed_at, expires_at in ahead:
        until = restarted_lease(renewed_at, expires_at, now)
        async with db.transaction(write=True) as tx:
            if await rows(tx).restart_lease(row_id, renewed_at, until, now):
                restarted.append(row_id)
    if restarted:
        jump = max((renewed_at - now).total_seconds() for _, renewed_at, _ in ahead)
        log.warning(
            "leases_renewed_ahead_of_the_clock",
            kind=kind,
            count=len(restarted),
            ahead_seconds=round(jump, 3),
        )
    return restarted
