"""First start: key version P-001, the audit signing key and the bootstrap super_admin key.

Idempotent and safe when several processes start at once: key files are created atomically
(an existing file wins), and the database part runs in one transaction that locks the
system-state row and re-checks ``initialized_at`` first.
"""

import asyncio
from dataclasses import dataclass

from ssbg import __version__
from ssbg.domain.audit_events import SYSTEM_RESOURCE, AuditEvent, key_version_resource
from ssbg.domain.enums import AuditAction, KeyVersionStatus, Role
from ssbg.domain.key_versions import FIRST_KEY_VERSION, KEY_ALGORITHM
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.models import AuditSigningKey, KeyVersion
from ssbg.services.api_key_service import ApiKeyService, IssuedApiKey, NewApiKey
from ssbg.services.audit_service import AuditTrail
from ssbg.services.integrity_service import IntegrityService
from ssbg.services.unit_of_work import AppDatabase


@dataclass(frozen=True)
class InitResult:
    issued: IssuedApiKey | None  # None when the gateway was already initialised

    @property
    def already_initialized(self) -> bool:
        return self.issued is None


class BootstrapService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        key_store: FileKeyStore,
        api_keys: ApiKeyService,
        integrity: IntegrityService,
    ) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock
        self._keys = key_store
        self._api_keys = api_keys
        self._integrity = integrity

    async def is_initialized(self) -> bool:
        async with self._db.transaction(write=False) as tx:
            return await tx.system_state.is_initialized()

    async def initialize(
        self, *, bootstrap_api_key: str | None = None, bootstrap_totp_secret: str | None = None
    ) -> InitResult:
        if await self.is_initialized():
            # A database of an earlier version is sealed once, here or at start-up.
            await self._integrity.adopt_if_needed()
            return InitResult(issued=None)
        kek = await asyncio.to_thread(self._keys.ensure_key_pair, FIRST_KEY_VERSION)
        signing = await asyncio.to_thread(self._keys.ensure_audit_signing_key)
        await asyncio.to_thread(self._keys.mfa_secret_box)
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            await tx.system_state.seal_if_pristine()
            state = await tx.system_state.get(for_update=True)
            if state.initialized_at is not None:
                return InitResult(issued=None)
            if await tx.key_versions.get_or_none(FIRST_KEY_VERSION) is None:
                tx.key_versions.add(
                    KeyVersion(
                        version=FIRST_KEY_VERSION,
                        status=KeyVersionStatus.ACTIVE,
                        algorithm=KEY_ALGORITHM,
                        public_key_pem=kek.public_key_pem,
                        fingerprint=kek.fingerprint,
                        created_at=now,
                    )
                )
                await self._trail.append(
                    tx,
                    AuditEvent.by(
                        None,
                        AuditAction.KEY_ROTATE,
                        key_version_resource(FIRST_KEY_VERSION),
                        from_version=None,
                        to_version=FIRST_KEY_VERSION,
                        fingerprint=kek.fingerprint,
                    ),
                )
            if await tx.audit.get_signing_key_or_none(signing.fingerprint) is None:
                tx.audit.add_signing_key(
                    AuditSigningKey(
                        key_id=signing.fingerprint,
                        public_key_pem=signing.public_key_pem,
                        created_at=now,
                    )
                )
            issued = await self._api_keys.issue_in(
                tx,
                NewApiKey(role=Role.SUPER_ADMIN, description="bootstrap super_admin"),
                None,
                raw_key=bootstrap_api_key,
                totp_secret=bootstrap_totp_secret,
            )
            state.initialized_at = now
            state.bootstrap_key_id = issued.record.id
            await self._trail.append(
                tx,
                AuditEvent.by(
                    None,
                    AuditAction.SYSTEM_START,
                    SYSTEM_RESOURCE,
                    event="INITIALIZED",
                    version=__version__,
                    checkpoint_interval=self._trail.checkpoint_interval,
                    audit_signing_key_id=signing.fingerprint,
                    bootstrap_key_id=str(issued.record.id),
                ),
            )
        await self._integrity.mark_sealed_from_birth()
        return InitResult(issued=issued)

    async def record_start(self, *, replica: str) -> None:
        """Append ``SYSTEM_START`` for a gateway process that begins serving."""
        async with self._db.transaction(write=True) as tx:
            await self._trail.append(
                tx,
                AuditEvent.by(
                    None,
                    AuditAction.SYSTEM_START,
                    SYSTEM_RESOURCE,
                    event="STARTED",
                    version=__version__,
                    checkpoint_interval=self._trail.checkpoint_interval,
                    replica=replica,
                ),
            )
