"""Rewriting key files of earlier versions in the current format, audited (SPEC §6).

Earlier versions wrote PKCS#12 files whose integrity MAC let a password guess cost 2,048
iterations. At start-up (and with ``ssbg keys upgrade``) each such file is rewritten as a
PKCS#8 ``ENCRYPTED PRIVATE KEY`` (see :mod:`ssbg.infrastructure.crypto.key_files`) and the old
one removed; each upgrade is a ``KEY_FILE_UPGRADE`` entry. Replicas sharing the key store may
all try: the file steps are safe to race, and only the replica that removed the old file
records it.
"""

import asyncio

from ssbg.domain.audit_events import SYSTEM_RESOURCE, AuditEvent, key_version_resource
from ssbg.domain.enums import AuditAction
from ssbg.infrastructure.crypto.key_files import CIPHER_NAME, KDF_NAME
from ssbg.infrastructure.crypto.key_store import (
    AUDIT_SIGNING_NAME,
    PBKDF2_ITERATIONS,
    FileKeyStore,
)
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase


class KeyFileService:
    def __init__(self, db: AppDatabase, trail: AuditTrail, key_store: FileKeyStore) -> None:
        self._db = db
        self._trail = trail
        self._keys = key_store

    async def upgrade_key_files(self, *, via: str) -> list[str]:
        """Upgrade every legacy key file; the names this call upgraded."""
        upgraded: list[str] = []
        for name in await asyncio.to_thread(self._keys.legacy_key_names):
            # The entry commits only once the file steps succeeded: it never claims an
            # upgrade that did not happen.
            resource = SYSTEM_RESOURCE if name == AUDIT_SIGNING_NAME else key_version_resource(name)
            async with self._db.transaction(write=True) as tx:
                if not await asyncio.to_thread(self._keys.upgrade_key_file, name):
                    continue
                await self._trail.append(
                    tx,
                    AuditEvent.by(
                        None,
                        AuditAction.KEY_FILE_UPGRADE,
                        resource,
                        key=name,
                        from_format="PKCS12",
                        to_format="PKCS8-PBES2",
                        kdf=KDF_NAME,
                        iterations=PBKDF2_ITERATIONS,
                        cipher=CIPHER_NAME,
                        via=via,
                    ),
                )
            upgraded.append(name)
        return upgraded
