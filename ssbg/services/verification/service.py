"""The verification facade routes call (SPEC §13.4): verify one backup (:mod:`.scrub`), release
a quarantined one (:mod:`.release`), verify a selection as a resumable job (:mod:`.jobs`)."""

from datetime import timedelta
from uuid import UUID

from ssbg.domain.identity import Actor
from ssbg.domain.verification import VerifySelection
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.models import BackupMetadata, VerifyJob
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.services.audit_service import AuditTrail
from ssbg.services.backups import BackupLifecycle
from ssbg.services.integrity_service import IntegrityService
from ssbg.services.restores.verification import BackupReader
from ssbg.services.unit_of_work import AppDatabase
from ssbg.services.verification.jobs import VerifyJobs
from ssbg.services.verification.release import BackupRelease
from ssbg.services.verification.scrub import BackupScrub, VerificationOutcome


class VerificationService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        store: ObjectStore,
        key_store: FileKeyStore,
        lifecycle: BackupLifecycle,
        integrity: IntegrityService,
        lease: timedelta,
    ) -> None:
        self._scrub = BackupScrub(
            db, trail, clock, BackupReader(store, key_store), store, lifecycle
        )
        self._release = BackupRelease(db, trail, lifecycle)
        # The runner, public: the app's lifespan runs it, tests drive it batch by batch.
        self.jobs = VerifyJobs(db, trail, clock, self._scrub, integrity, lease)

    async def verify_backup(self, actor: Actor, backup_id: UUID) -> VerificationOutcome:
        return await self._scrub.verify_backup(actor, backup_id)

    async def release_backup(self, actor: Actor, backup_id: UUID, reason: str) -> BackupMetadata:
        return await self._release.release_backup(actor, backup_id, reason)

    async def start_job(self, actor: Actor, selection: VerifySelection) -> VerifyJob:
        job = await self.jobs.start(actor, selection)
        self.jobs.wake()
        return job

    async def get_job(self, job_id: UUID) -> VerifyJob:
        return await self.jobs.get(job_id)
