"""The key lifecycle facade (SPEC §13.1): inventory, rotation, rewrap, crypto-shred."""

from collections.abc import Sequence

from ssbg.domain.identity import Actor
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.audit_signing import CheckpointSigner
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.services.audit_service import AuditTrail
from ssbg.services.backups import BackupLifecycle
from ssbg.services.keys.inventory import KeyInventory, KeyView
from ssbg.services.keys.rewrap import KeyRewrap, Rewrap
from ssbg.services.keys.rotation import KeyRotation, Rotation
from ssbg.services.keys.shredding import KeyShredding, Shred
from ssbg.services.policy_enforcement import PolicyEnforcer
from ssbg.services.unit_of_work import AppDatabase


class KeyService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        key_store: FileKeyStore,
        store: ObjectStore,
        signer: CheckpointSigner,
        policy: PolicyEnforcer,
        backups: BackupLifecycle,
    ) -> None:
        self._inventory = KeyInventory(db)
        self._rotation = KeyRotation(db, trail, clock, key_store)
        self._rewrap = KeyRewrap(db, trail, clock, key_store, store)
        self._shredding = KeyShredding(db, trail, clock, key_store, signer, policy, backups)

    async def list_keys(self) -> Sequence[KeyView]:
        return await self._inventory.list_keys()

    async def get_key(self, version: str) -> KeyView:
        return await self._inventory.get_key(version)

    async def rotate(self, actor: Actor | None, reason: str, *, via: str = "api") -> Rotation:
        return await self._rotation.rotate(actor, reason, via=via)

    async def rewrap(self, actor: Actor, from_version: str, reason: str) -> Rewrap:
        return await self._rewrap.rewrap(actor, from_version, reason)

    async def crypto_shred(
        self, actor: Actor, version: str, confirmation: str | None, reason: str
    ) -> Shred:
        return await self._shredding.crypto_shred(actor, version, confirmation, reason)

    async def resume_interrupted_shreds(self) -> list[str]:
        return await self._shredding.resume_interrupted()
