"""Rewrap (SPEC §13.1): move every backup of an old key version to the active one by sealing
its DEK again — only ``dek.wrapped`` changes, never the ciphertext.

One backup at a time, each crash-safe: the DEK is unwrapped with the old private key and
wrapped to the active public key in memory; the new object is written beside the old one
(``dek.<version>.wrapped``); then the metadata switches (key version and object reference,
compare-and-set on both, ``KEY_REWRAP`` in the same transaction); only then is the old object
removed. Interrupted anywhere, nothing is lost — before the switch the old object still serves,
after it the new one — and a second call finishes what the first left. Afterwards the old
version protects nothing stored and can be shredded without losing a backup.
"""

import asyncio
from dataclasses import dataclass
from uuid import UUID

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.audit_events import AuditEvent, backup_resource
from ssbg.domain.enums import AuditAction, BackupStatus
from ssbg.domain.errors import (
    CryptoShredded,
    InvalidStateTransition,
    KeyUnavailable,
    NotFound,
    StorageUnavailable,
)
from ssbg.domain.identity import Actor
from ssbg.domain.key_versions import unwraps
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.crypto.object_format import rewrap_dek
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.infrastructure.storage.layout import rewrapped_dek_key
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase

log = structlog.get_logger("ssbg.keys")

BATCH = 100
# Backups whose DEK still exists in the store (a deleted or failed one's objects are gone).
STORED = (BackupStatus.ACTIVE, BackupStatus.QUARANTINED)


@dataclass(frozen=True)
class Rewrap:
    from_version: str
    to_version: str
    rewrapped: int


@dataclass(frozen=True, slots=True)
class KeyRewrap:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    key_store: FileKeyStore
    store: ObjectStore

    async def rewrap(self, actor: Actor | None, from_version: str, reason: str) -> Rewrap:
        async with self.db.transaction(write=False) as tx:
            old = await tx.key_versions.get_or_none(from_version)
            active = await tx.key_versions.get_active_or_none()
        if old is None:
            raise NotFound(f"No key version {from_version}.")
        if not unwraps(old.status, old.shred_started_at is not None):
            raise CryptoShredded(f"Key version {from_version} is destroyed or being destroyed.")
        if active is None:
            raise KeyUnavailable("No active key version.")
        if old.version == active.version:
            raise InvalidStateTransition(
                f"{from_version} is the active version: rotate first, then rewrap.",
                {"status": old.status.value},
            )
        private_key = await asyncio.to_thread(self.key_store.load_private_key, from_version)
        public_key = serialization.load_pem_public_key(active.public_key_pem.encode())
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        rewrapped = 0
        while True:
            async with self.db.transaction(write=False) as tx:
                batch = await tx.backups.list_ids_under_key(from_version, STORED, BATCH)
            if not batch:
                break
            for backup_id in batch:
                if await self._rewrap_one(
                    actor, backup_id, private_key, public_key, old.version, active.version, reason
                ):
                    rewrapped += 1
        return Rewrap(from_version, active.version, rewrapped)

    async def _rewrap_one(
        self,
        actor: Actor | None,
        backup_id: UUID,
        private_key: ec.EllipticCurvePrivateKey,
        public_key: ec.EllipticCurvePublicKey,
        from_version: str,
        to_version: str,
        reason: str,
    ) -> bool:
        async with self.db.transaction(write=False) as tx:
            backup = await tx.backups.get_or_none(backup_id)
        if backup is None or backup.key_version != from_version:
            return False
        old_ref, new_ref = backup.wrapped_dek_ref, rewrapped_dek_key(backup_id, to_version)
        wrapped = await self.store.read_bytes(old_ref)
        sealed = await asyncio.to_thread(
            rewrap_dek,
            wrapped,
            private_key,
            public_key,
            backup_id=backup_id,
            from_version=from_version,
            to_version=to_version,
        )
        await self.store.put_bytes(new_ref, sealed)
        async with self.db.transaction(write=True) as tx:
            switched = await tx.backups.switch_wrapped_dek(
                backup_id, from_version, old_ref, to_version, new_ref, self.clock.now()
            )
            if switched:
                await self.trail.append(
                    tx,
                    AuditEvent.by(
                        actor,
                        AuditAction.KEY_REWRAP,
                        backup_resource(backup_id),
                        from_version=from_version,
                        to_version=to_version,
                        wrapped_dek_ref=new_ref,
                        replaced_ref=old_ref,
                        reason=reason,
                    ),
                )
        if not switched:
            return False
        try:
            await self.store.delete(old_ref)
        except StorageUnavailable:
            # Harmless where it stays: a DEK wrapped to the old version, shredded with it.
            log.warning("rewrap_old_object_kept", backup_id=str(backup_id))
        return True
