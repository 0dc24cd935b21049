"""Crash recovery (SPEC §5): no record stays PROCESSING or VERIFYING once its process died.

A process streaming a backup renews the record's lease (``SSBG_BACKUP_LEASE_SECONDS``). At
start-up, and then once per lease period, every replica looks for ``PROCESSING`` records whose
lease lapsed and fails them with reason ``INTERRUPTED``: a compare-and-set on the status and
the lapsed lease, so when several replicas sweep at once exactly one of them moves each record
(and appends its ``BACKUP_FAILED``), and a live upload that renewed its lease is never touched.
A lease renewed after now — the clock went back since — is first counted again from now
(``ssbg.domain.leases``): a live holder keeps it, a dead one's record is failed one lease
later instead of once the clock has caught up.
Restore requests left ``VERIFYING`` by a dead gateway are failed the same way
(``INTERRUPTED``). The partial objects are removed after the record is ``FAILED``; if the store
is down, ``cleanup_pending`` stays set and the next sweep retries — also for failed or deleted
backups whose removal failed at the time.
"""

import asyncio
from dataclasses import dataclass, field
from uuid import UUID

import structlog

from ssbg.domain.enums import BackupFailureReason
from ssbg.domain.errors import SsbgError
from ssbg.infrastructure.clock import Clock
from ssbg.services.audit_service import AuditTrail
from ssbg.services.backups import BackupLifecycle
from ssbg.services.leases import restart_leases_renewed_after
from ssbg.services.restores import RestoreService
from ssbg.services.unit_of_work import AppDatabase

BATCH = 100


@dataclass(frozen=True)
class RecoveryReport:
    interrupted: list[UUID]
    cleaned: list[UUID]
    restores_interrupted: list[UUID] = field(default_factory=list)


class BackupRecoveryService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        backups: BackupLifecycle,
        restores: RestoreService | None = None,
    ) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock
        self._backups = backups
        self._restores = restores

    async def recover(self) -> RecoveryReport:
        """Fail every PROCESSING backup whose lease lapsed; retry pending object removals."""
        interrupted = await self._fail_lapsed()
        cleaned = [backup_id for backup_id in interrupted if await self._remove(backup_id)]
        async with self._db.transaction(write=False) as tx:
            pending = [b.id for b in await tx.backups.list_cleanup_pending(BATCH)]
        for backup_id in pending:
            if backup_id not in cleaned and await self._remove(backup_id):
                cleaned.append(backup_id)
        restores = await self._restores.fail_interrupted() if self._restores else []
        return RecoveryReport(
            interrupted=interrupted, cleaned=cleaned, restores_interrupted=restores
        )

    async def _remove(self, backup_id: UUID) -> bool:
        return await self._backups.remove_objects(backup_id)

    async def _fail_lapsed(self) -> list[UUID]:
        now = self._clock.now()
        await restart_leases_renewed_after(self._db, now, lambda tx: tx.backups, "backup")
        async with self._db.transaction(write=False) as tx:
            candidates = await tx.backups.list_lapsed_processing(now, BATCH)
        failed: list[UUID] = []
        for backup_id in candidates:
            async with self._db.transaction(write=True) as tx:
                record = await self._backups.fail_processing(
                    tx, backup_id, BackupFailureReason.INTERRUPTED, None, lease_lapsed_before=now
                )
            if record is not None:  # else renewed meanwhile, or another replica got there first
                failed.append(backup_id)
        return failed

    async def sweep_once(self) -> RecoveryReport | None:
        """:meth:`recover`, logging instead of raising (start-up and the periodic sweep)."""
        log = structlog.get_logger("ssbg.recovery")
        try:
            report = await self.recover()
        except SsbgError as exc:
            log.warning("backup_recovery_failed", code=exc.code)
            return None
        except Exception as exc:
            log.error("backup_recovery_failed", error=type(exc).__name__)
            return None
        if report.interrupted or report.cleaned or report.restores_interrupted:
            log.info(
                "backup_recovery",
                interrupted=len(report.interrupted),
                cleaned=len(report.cleaned),
                restores_interrupted=len(report.restores_interrupted),
            )
        return report

    async def run_periodically(self, interval_seconds: float) -> None:
        """Sweep once per ``interval_seconds``, forever (a task of the app's lifespan)."""
        while True:
            await asyncio.sleep(interval_seconds)
            await self.sweep_once()
