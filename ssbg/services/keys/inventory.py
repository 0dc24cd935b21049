"""What the key store protects (SPEC §13.1): every key version, its state and its backups.

Never any key material: the public key is named by its SHA-256 fingerprint only.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from ssbg.domain.errors import NotFound
from ssbg.infrastructure.db.models import KeyVersion
from ssbg.services.unit_of_work import AppDatabase


@dataclass(frozen=True)
class KeyView:
    record: KeyVersion
    backups: int
    bytes: int


@dataclass(frozen=True, slots=True)
class KeyInventory:
    db: AppDatabase

    async def list_keys(self) -> Sequence[KeyView]:
        async with self.db.transaction(write=False) as tx:
            versions = await tx.key_versions.list_versions()
            protected = await tx.backups.protection_by_key_version()
        return [KeyView(record, *protected.get(record.version, (0, 0))) for record in versions]

    async def get_key(self, version: str) -> KeyView:
        async with self.db.transaction(write=False) as tx:
            record = await tx.key_versions.get_or_none(version)
            if record is None:
                raise NotFound(f"No key version {version}.")
            protected = await tx.backups.protection_by_key_version(version)
        return KeyView(record, *protected.get(version, (0, 0)))
