"""The restores facade routes call: one object, each use case in its own module.

A restore leaves evidence whatever happens, in short explicit transactions; none is open
while the backup is decrypted. See, in order: :mod:`.admission` (may this caller restore this
backup now), :mod:`.requests` (a new request), :mod:`.verification` (decrypt-and-verify),
:mod:`.results` (completed or failed), :mod:`.approvals` (four eyes), :mod:`.tokens` (a fresh
download token), :mod:`.downloads` (streaming the plaintext); every status change goes
through :mod:`.lifecycle`.
"""

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from ssbg.domain.identity import Actor
from ssbg.domain.queries import RestoreCursor
from ssbg.domain.restore_lifecycle import RestoreStatus
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.models import RestoreRequest
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import AuthService
from ssbg.services.backups import BackupLifecycle
from ssbg.services.policy_enforcement import PolicyEnforcer
from ssbg.services.restores.admission import RestoreAdmission
from ssbg.services.restores.approvals import RestoreApprovals
from ssbg.services.restores.downloads import RestoreDownload, RestoreDownloads
from ssbg.services.restores.lifecycle import RestoreLifecycle
from ssbg.services.restores.requests import RestoreRequests
from ssbg.services.restores.results import RestoreOutcome, RestoreResults
from ssbg.services.restores.tokens import RestoreTokens
from ssbg.services.restores.verification import BackupReader, RestoreVerification
from ssbg.services.unit_of_work import AppDatabase
from ssbg.settings import Settings


class RestoreService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        settings: Settings,
        store: ObjectStore,
        key_store: FileKeyStore,
        policy: PolicyEnforcer,
        auth: AuthService,
        backups: BackupLifecycle,
        integrity: IntegrityKey,
    ) -> None:
        token_ttl = timedelta(seconds=settings.restore_token_ttl_seconds)
        lease = timedelta(seconds=settings.backup_lease_seconds)
        lifecycle = RestoreLifecycle(trail, clock)
        admission = RestoreAdmission(clock, policy, auth)
        reader = BackupReader(store, key_store)
        self._results = RestoreResults(db, trail, clock, lifecycle, backups, integrity, token_ttl)
        verification = RestoreVerification(db, clock, reader, self._results, lease)
        self._requests = RestoreRequests(db, trail, clock, admission, verification, lease)
        self._approvals = RestoreApprovals(
            db, trail, clock, admission, lifecycle, verification, lease
        )
        self._tokens = RestoreTokens(
            db, trail, clock, admission, lifecycle, reader, integrity, token_ttl
        )
        self._downloads = RestoreDownloads(
            db, trail, clock, admission, lifecycle, reader, self._results, integrity
        )

    async def request_restore(
        self, actor: Actor, backup_id: UUID, justification: str, *, mfa_token: str | None = None
    ) -> RestoreOutcome:
        return await self._requests.request_restore(
            actor, backup_id, justification, mfa_token=mfa_token
        )

    async def get_restore(self, restore_id: UUID) -> RestoreRequest:
        return await self._requests.get_restore(restore_id)

    async def list_restores(
        self, status: RestoreStatus | None, after: RestoreCursor | None, limit: int
    ) -> tuple[Sequence[RestoreRequest], RestoreCursor | None]:
        return await self._requests.list_restores(status, after, limit)

    async def approve(self, actor: Actor, restore_id: UUID) -> RestoreRequest:
        return await self._approvals.approve(actor, restore_id)

    async def reject(self, actor: Actor, restore_id: UUID, reason: str) -> RestoreRequest:
        return await self._approvals.reject(actor, restore_id, reason)

    async def issue_token(
        self, actor: Actor, restore_id: UUID, *, mfa_token: str | None = None
    ) -> RestoreOutcome:
        return await self._tokens.issue_token(actor, restore_id, mfa_token=mfa_token)

    async def open_download(
        self, actor: Actor, restore_id: UUID, presented_token: str | None
    ) -> RestoreDownload:
        return await self._downloads.open_download(actor, restore_id, presented_token)

    async def fail_interrupted(self) -> list[UUID]:
        return await self._results.fail_interrupted()
