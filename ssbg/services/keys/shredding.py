"""Crypto-shredding (SPEC §6, §13.1): destroy a key version and, with it, every backup it
protects — provably, with a signed destruction certificate.

Refused, with nothing changed: an unknown version (404), a confirmation other than
``DESTROY <version>`` (422), the ``ACTIVE`` version (409: rotate first), a version already
destroyed (409), a version still receiving a backup (409), a version protecting a backup under
a legal hold (409 ``CONFLICT``, ``details.held_backups``; recorded as a denied
``CRYPTO_SHRED_START``), and whatever policy P7 refuses (super_admin with MFA only). Then, in
order, each step durable before the next:

1. ``CRYPTO_SHRED_START`` — and the version marked as being shredded (sealed): from here no
   replica unwraps with it (each checks the version before every unwrap and forgets the key
   it held), since the key file may be gone any moment and the shred is never undone;
2. the private key file overwritten, fsynced and unlinked (the public key file stays);
3. the version ``DESTROYED``, ``KEY_DESTROY``;
4. every backup it protects ``CRYPTO_SHREDDED``, in batches (transition rows, audit entries);
5. the certificate signed and stored, ``CRYPTO_SHRED_COMPLETE``.

Interrupted anywhere after 1, a retry or the next start completes it (every step is
idempotent); nothing before 1 has changed anything.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import AuditEvent, key_version_resource
from ssbg.domain.destruction_certificate import CERTIFICATE_TYPE
from ssbg.domain.enums import (
    AuditAction,
    AuditResult,
    BackupStatus,
    KeyVersionStatus,
    PolicyOperation,
)
from ssbg.domain.errors import Conflict, InvalidStateTransition, NotFound, ValidationFailed
from ssbg.domain.identity import Actor
from ssbg.domain.key_versions import check_key_transition, shred_confirmation
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.audit_signing import CheckpointSigner
from ssbg.infrastructure.crypto.certificates import sign_certificate
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.models import KeyVersion
from ssbg.services.audit_service import AuditTrail
from ssbg.services.backups import BackupLifecycle
from ssbg.services.policy_enforcement import PolicyCheck, PolicyEnforcer, policy_error
from ssbg.services.unit_of_work import AppDatabase

log = structlog.get_logger("ssbg.keys")

BATCH = 1_000
HELD_LISTED = 100  # held backups named in a refusal (details.held_count counts them all)
# What a destroyed version leaves without a key: every backup whose DEK it wrapped.
SHREDDABLE = (BackupStatus.ACTIVE, BackupStatus.QUARANTINED, BackupStatus.DELETED)


@dataclass(frozen=True)
class Shred:
    version: KeyVersion
    certificate: dict[str, Any]  # its ``backups`` are every backup the version protected


@dataclass(frozen=True, slots=True)
class KeyShredding:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    key_store: FileKeyStore
    signer: CheckpointSigner
    policy: PolicyEnforcer
    backups: BackupLifecycle

    async def crypto_shred(
        self, actor: Actor, version: str, confirmation: str | None, reason: str
    ) -> Shred:
        """Destroy ``version`` (the route has checked the role and the TOTP code)."""
        held_refusal: Conflict | None = None
        async with self.db.transaction(write=True) as tx:
            record = await tx.key_versions.get_for_update_or_none(version)
            if record is None:
                raise NotFound(f"No key version {version}.")
            if confirmation != shred_confirmation(version):
                raise ValidationFailed(
                    "Type the confirmation exactly.",
                    {"confirmation": f"must be {shred_confirmation(version)!r}"},
                )
            if record.destruction_certificate is not None:
                raise InvalidStateTransition(
                    f"{version} is already destroyed.", {"status": record.status.value}
                )
            if record.shred_started_at is None:
                check_key_transition(record.status, KeyVersionStatus.DESTROYED)
                if record.status is KeyVersionStatus.ACTIVE:
                    raise InvalidStateTransition(
                        f"{version} is the active version: rotate first.",
                        {"status": record.status.value},
                    )
                ingesting = await tx.backups.list_ids_under_key(
                    version, [BackupStatus.PROCESSING], 1
                )
                if ingesting:
                    raise InvalidStateTransition(
                        f"A backup under {version} is still being stored; try again later.",
                        {"backup_id": str(ingesting[0])},
                    )
                held, held_count = await tx.backups.held_under_key(version, HELD_LISTED)
                if held:
                    # Under the version's row lock: a hold placed concurrently waits for this
                    # transaction, or this one found it (see ssbg.services.backups.holds).
                    refusal = Conflict(
                        f"{held_count} backup(s) under {version} are under a legal hold; "
                        "release the holds or rewrap those backups first.",
                        {
                            "reason": "LEGAL_HOLD",
                            "held_backups": [str(backup_id) for backup_id in held],
                            "held_count": held_count,
                        },
                    )
                    await self.trail.append(
                        tx,
                        AuditEvent.by(
                            actor,
                            AuditAction.CRYPTO_SHRED_START,
                            key_version_resource(version),
                            AuditResult.DENIED,
                            shred_reason=reason,
                            **refusal.details,
                        ),
                    )
                    held_refusal = refusal
            if record.shred_started_at is None and held_refusal is None:
                outcome = await self.policy.decide(
                    tx,
                    actor,
                    PolicyCheck(
                        operation=PolicyOperation.CRYPTO_SHRED,
                        resource=key_version_resource(version),
                        mfa_verified=True,
                    ),
                )
                await self.trail.append(tx, outcome.event)
                if outcome.decision.allowed:
                    record.shred_started_at = self.clock.now()
                    record.shred_reason = reason
                    record.shred_actor_id = actor.key_id
                    await self.trail.append(
                        tx,
                        AuditEvent.by(
                            actor,
                            AuditAction.CRYPTO_SHRED_START,
                            key_version_resource(version),
                            public_key_sha256=record.fingerprint,
                            reason=reason,
                        ),
                    )
        if held_refusal is not None:
            raise held_refusal
        if record.shred_started_at is None:
            raise policy_error(outcome.decision)
        return await self.complete(version, actor)

    async def resume_interrupted(self) -> list[str]:
        """Complete every shred an earlier process began (start-up); the versions done."""
        async with self.db.transaction(write=False) as tx:
            pending = [record.version for record in await tx.key_versions.list_shreds_in_progress()]
        for version in pending:
            log.warning("crypto_shred_resumed", key_version=version)
            await self.complete(version, None)
        return pending

    async def complete(self, version: str, actor: Actor | None) -> Shred:
        """Steps 2 to 5 (see the module doc), each skipped if an earlier attempt did it."""
        async with self.db.transaction(write=False) as tx:
            # Read (its seal checked) right before the irreversible step: only a shred the
            # owner began — never a mark a database writer set — destroys a key.
            record = await tx.key_versions.get_or_none(version)
        if record is None or record.shred_started_at is None:
            raise InvalidStateTransition(f"No crypto-shred of {version} was begun.")
        await asyncio.to_thread(self.key_store.destroy_private_key, version)
        destroy_entry = await self._mark_destroyed(version, actor)
        while True:
            async with self.db.transaction(write=True) as tx:
                ids = await tx.backups.list_ids_under_key(version, SHREDDABLE, BATCH)
                if not ids:
                    break
                locked = [b for b in await tx.backups.lock_many(ids) if b.status in SHREDDABLE]
                await self.backups.move_many(
                    tx,
                    locked,
                    BackupStatus.CRYPTO_SHREDDED,
                    actor,
                    reason=AuditAction.CRYPTO_SHRED_COMPLETE.value,
                    details={"key_version": version},
                )
        return await self._certify(version, actor, destroy_entry)

    async def _mark_destroyed(self, version: str, actor: Actor | None) -> tuple[int, str]:
        """The version ``DESTROYED`` with ``KEY_DESTROY``; that entry's (sequence, hash)."""
        async with self.db.transaction(write=True) as tx:
            record = await tx.key_versions.get_for_update_or_none(version)
            assert record is not None
            if record.status is not KeyVersionStatus.DESTROYED:
                check_key_transition(record.status, KeyVersionStatus.DESTROYED)
                record.status, record.destroyed_at = KeyVersionStatus.DESTROYED, self.clock.now()
                entry = await self.trail.append(
                    tx,
                    AuditEvent.by(
                        actor,
                        AuditAction.KEY_DESTROY,
                        key_version_resource(version),
                        public_key_sha256=record.fingerprint,
                        private_key_file="overwritten, fsynced, unlinked",
                    ),
                )
                return entry.fields.sequence_number, entry.entry_hash
            found = await tx.audit.last_entry_of(
                AuditAction.KEY_DESTROY, key_version_resource(version)
            )
        if found is None:
            raise InvalidStateTransition(f"{version} was destroyed without a KEY_DESTROY entry.")
        return found

    async def _certify(
        self, version: str, actor: Actor | None, destroy_entry: tuple[int, str]
    ) -> Shred:
        async with self.db.transaction(write=False) as tx:
            record = await tx.key_versions.get_or_none(version)
            destroyed = await tx.backups.checksums_under_key(version, BackupStatus.CRYPTO_SHREDDED)
        assert record is not None
        assert record.destroyed_at is not None
        if record.destruction_certificate is not None:
            return Shred(record, record.destruction_certificate)
        certificate = await sign_certificate(
            self.signer,
            {
                "type": CERTIFICATE_TYPE,
                "key_version": version,
                "public_key_sha256": record.fingerprint,
                "destroyed_at": format_timestamp(record.destroyed_at),
                "reason": record.shred_reason or "",
                "actor_id": str(record.shred_actor_id) if record.shred_actor_id else None,
                "backups": [
                    {"backup_id": str(backup_id), "ciphertext_sha512": checksum}
                    for backup_id, checksum in destroyed
                ],
                "audit_sequence": destroy_entry[0],
                "audit_entry_hash": destroy_entry[1],
            },
        )
        async with self.db.transaction(write=True) as tx:
            current = await tx.key_versions.get_for_update_or_none(version)
            assert current is not None
            if current.destruction_certificate is None:
                current.destruction_certificate = certificate
                await self.trail.append(
                    tx,
                    AuditEvent.by(
                        actor,
                        AuditAction.CRYPTO_SHRED_COMPLETE,
                        key_version_resource(version),
                        backups_shredded=len(destroyed),
                        certificate_signature=certificate["signature"],
                    ),
                )
            else:
                certificate = current.destruction_certificate
            record = current
        log.info("crypto_shred_complete", key_version=version, backups=len(destroyed))
        return Shred(record, certificate)
