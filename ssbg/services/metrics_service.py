"""A scrape of ``GET /metrics``: this gateway's counters plus the shared state, read now.

The shared state (open alerts, effective incident level, audit head) is read from the
database in one read transaction at every scrape, so every worker and every replica reports
the same figures. The read has a deadline: a database that hangs or fails turns into
``ssbg_database_up 0`` with those gauges left out — never into stale or zero values — and
the process-local counters are still served.
"""

import asyncio

import structlog

from ssbg.domain.errors import SsbgError
from ssbg.domain.incident import effective_incident_level
from ssbg.infrastructure import metrics
from ssbg.infrastructure.clock import Clock
from ssbg.services.unit_of_work import AppDatabase

log = structlog.get_logger("ssbg.metrics")

READ_TIMEOUT_SECONDS = 5.0


class MetricsService:
    def __init__(self, db: AppDatabase, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def scrape(self) -> bytes:
        """The exposition text (Prometheus text format 0.0.4)."""
        state = await self.shared_state_or_none()
        # Under several workers this reads every worker's metric files: off the event loop.
        return await asyncio.to_thread(metrics.render, state)

    async def shared_state_or_none(self) -> metrics.SharedState | None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                return await self._read_shared_state()
        except TimeoutError:
            log.warning("metrics_shared_state_unavailable", error="TIMEOUT")
        except SsbgError as exc:  # DatabaseUnavailable, or a tampered system_state row
            log.warning("metrics_shared_state_unavailable", error=exc.code)
        return None

    async def _read_shared_state(self) -> metrics.SharedState:
        async with self._db.transaction(write=False) as tx:
            alerts = await tx.alerts.count_open_by_severity()
            state = await tx.system_state.get()
            head = await tx.audit.get_head()
        level = effective_incident_level(
            state.incident_level, state.incident_changed_at, state.last_alert_at, self._clock.now()
        )
        return metrics.SharedState(
            alerts_open={severity.value: count for severity, count in alerts.items()},
            incident_level=int(level),
            audit_head_sequence=head.sequence_number,
        )
