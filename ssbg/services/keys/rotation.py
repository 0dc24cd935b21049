"""Rotation (SPEC §13.1): a new key version becomes ``ACTIVE``, the old one ``RETIRED``.

The new key pair is generated and written durably to the key store *before* the database
switches, so no ``ACTIVE`` version ever lacks its private key. The switch locks the current
``ACTIVE`` row: of two rotations racing on two replicas exactly one wins, the other gets
``409``. Every replica reads the active version for each new backup, so the next backup any
of them starts uses the new version; nothing is re-encrypted (``RETIRED`` still unwraps).
"""

import asyncio
from dataclasses import dataclass

from ssbg.domain.audit_events import AuditEvent, key_version_resource
from ssbg.domain.enums import AuditAction, KeyVersionStatus
from ssbg.domain.errors import InvalidStateTransition, KeyUnavailable
from ssbg.domain.identity import Actor
from ssbg.domain.key_versions import KEY_ALGORITHM, check_key_transition, next_key_version
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.models import KeyVersion
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase


@dataclass(frozen=True)
class Rotation:
    version: KeyVersion
    previous: str


@dataclass(frozen=True, slots=True)
class KeyRotation:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    key_store: FileKeyStore

    async def rotate(self, actor: Actor | None, reason: str, *, via: str = "api") -> Rotation:
        async with self.db.transaction(write=False) as tx:
            active = await tx.key_versions.get_active_or_none()
            names = [record.version for record in await tx.key_versions.list_versions()]
        if active is None:
            raise KeyUnavailable("No active key version.")
        previous, new_name = active.version, next_key_version(names)
        # Durable in the key store first (replicas racing here share one file per name).
        info = await asyncio.to_thread(self.key_store.ensure_key_pair, new_name)
        async with self.db.transaction(write=True) as tx:
            current = await tx.key_versions.get_for_update_or_none(previous)
            taken = await tx.key_versions.get_or_none(new_name)
            if current is None or current.status is not KeyVersionStatus.ACTIVE or taken:
                raise InvalidStateTransition(
                    "Another rotation changed the active key version meanwhile.",
                    {"expected_active": previous},
                )
            check_key_transition(current.status, KeyVersionStatus.RETIRED)
            now = self.clock.now()
            current.status, current.retired_at = KeyVersionStatus.RETIRED, now
            record = KeyVersion(
                version=new_name,
                status=KeyVersionStatus.ACTIVE,
                algorithm=KEY_ALGORITHM,
                public_key_pem=info.public_key_pem,
                fingerprint=info.fingerprint,
                created_at=now,
            )
            tx.key_versions.add(record)
            await self.trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.KEY_ROTATE,
                    key_version_resource(new_name),
                    from_version=previous,
                    to_version=new_name,
                    fingerprint=info.fingerprint,
                    reason=reason,
                    via=via,
                ),
            )
        return Rotation(record, previous)
