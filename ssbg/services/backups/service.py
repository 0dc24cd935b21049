"""The backups facade routes call: one object, each use case in its own module."""

from collections.abc import AsyncIterator, Sequence
from uuid import UUID

from ssbg.domain.identity import Actor
from ssbg.domain.queries import BackupCursor, BackupFilters
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import AuthService
from ssbg.services.backups.deletion import BackupDeletion, Expired, ExpiryOutcome
from ssbg.services.backups.holds import BackupHolds
from ssbg.services.backups.idempotency import BackupSubmission, IngestOutcome
from ssbg.services.backups.ingest import BackupIngest
from ssbg.services.backups.lifecycle import BackupLifecycle
from ssbg.services.backups.reads import BackupPage, BackupReads, BackupStatusView
from ssbg.services.policy_enforcement import PolicyEnforcer
from ssbg.services.unit_of_work import AppDatabase
from ssbg.settings import Settings


class BackupService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        settings: Settings,
        store: ObjectStore,
        policy: PolicyEnforcer,
        auth: AuthService,
    ) -> None:
        self.lifecycle = BackupLifecycle(db, trail, clock, store)
        self._ingest = BackupIngest(db, trail, clock, settings, store, policy, auth, self.lifecycle)
        self._reads = BackupReads(db)
        self._deletion = BackupDeletion(db, trail, policy, auth, self.lifecycle)
        self._holds = BackupHolds(db, trail, clock)

    async def create_backup(
        self,
        actor: Actor,
        submission: BackupSubmission,
        payload: AsyncIterator[bytes],
        *,
        idempotency_key: str | None = None,
        mfa_token: str | None = None,
    ) -> IngestOutcome:
        return await self._ingest.create_backup(
            actor, submission, payload, idempotency_key=idempotency_key, mfa_token=mfa_token
        )

    async def get_backup(self, actor: Actor, backup_id: UUID) -> BackupMetadata:
        return await self._reads.get_backup(actor, backup_id)

    async def get_status(self, actor: Actor, backup_id: UUID) -> BackupStatusView:
        return await self._reads.get_status(actor, backup_id)

    async def list_backups(
        self, actor: Actor, filters: BackupFilters, after: BackupCursor | None, limit: int
    ) -> BackupPage:
        return await self._reads.list_backups(actor, filters, after, limit)

    async def delete_backup(
        self, actor: Actor, backup_id: UUID, *, mfa_token: str | None = None
    ) -> BackupMetadata:
        return await self._deletion.delete_backup(actor, backup_id, mfa_token=mfa_token)

    async def delete_expired(
        self, actor: Actor, batch: Sequence[Expired], *, mfa_verified: bool
    ) -> ExpiryOutcome:
        return await self._deletion.delete_expired(actor, batch, mfa_verified=mfa_verified)

    async def place_hold(self, actor: Actor, backup_id: UUID, reason: str) -> BackupMetadata:
        return await self._holds.place_hold(actor, backup_id, reason)

    async def release_hold(self, actor: Actor, backup_id: UUID, reason: str) -> BackupMetadata:
        return await self._holds.release_hold(actor, backup_id, reason)
