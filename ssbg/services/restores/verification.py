"""Decrypt-and-verify: no token before the whole backup has been proven intact.

The key version's status is re-read from the database (a destroyed key is refused on every
replica), the DEK unwrapped, every segment authenticated and decrypted, both SHA-512s
recomputed and compared with the metadata; the plaintext is discarded. No transaction is open
meanwhile; a lease on the request is renewed instead, so a dead gateway's request is failed
by recovery. Downloads use the same key, store and decryptor plumbing.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.errors import BackupNotFound, CryptoShredded, IntegrityFailure, SsbgError
from ssbg.domain.identity import Actor
from ssbg.domain.key_versions import unwraps
from ssbg.domain.verification import ObjectFacts, mismatched_fields
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor, full_segment_bytes
from ssbg.infrastructure.crypto.object_format import ObjectHeader, dek_resolver_for
from ssbg.infrastructure.crypto.stream_decryption import VerifiedObject, verify_object
from ssbg.infrastructure.db.models import BackupMetadata, RestoreRequest
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.infrastructure.storage.errors import ObjectMissing
from ssbg.services.restores.results import INTERRUPTED, RestoreOutcome, RestoreResults
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

READ_CHUNK_SEGMENTS = 1


def recorded_facts(backup: BackupMetadata) -> ObjectFacts:
    """Sizes and checksums as the backup's (sealed) metadata records them."""
    return ObjectFacts(
        plaintext_bytes=backup.original_size,
        ciphertext_bytes=backup.encrypted_size,
        checksum_plaintext=backup.checksum_plaintext,
        checksum_ciphertext=backup.checksum_ciphertext,
        stored_bytes=backup.stored_size,
    )


def measured_facts(verified: VerifiedObject) -> ObjectFacts:
    """Sizes and checksums as a full read of the stored objects measured them."""
    return ObjectFacts(
        plaintext_bytes=verified.plaintext_bytes,
        ciphertext_bytes=verified.ciphertext_bytes,
        checksum_plaintext=verified.checksum_plaintext,
        checksum_ciphertext=verified.checksum_ciphertext,
        stored_bytes=verified.stored_bytes,
    )


@dataclass(frozen=True, slots=True)
class BackupReader:
    """The backup's key, wrapped DEK and ciphertext, as a verification or download needs."""

    store: ObjectStore
    key_store: FileKeyStore

    async def usable_private_key(
        self, tx: UnitOfWork, backup: BackupMetadata
    ) -> ec.EllipticCurvePrivateKey:
        """The backup's key-encryption key. Its status is re-read from the database every
        time, so a version destroyed — or whose shred began — on any replica is refused here
        (410)."""
        key_version = await tx.key_versions.get_or_none(backup.key_version)
        if key_version is None or not unwraps(
            key_version.status, key_version.shred_started_at is not None
        ):
            self.key_store.forget(backup.key_version)  # no copy survives in this process
            raise CryptoShredded()
        return await asyncio.to_thread(self.key_store.load_private_key, backup.key_version)

    async def decryptor(self, tx: UnitOfWork, backup: BackupMetadata) -> ObjectDecryptor:
        private_key = await self.usable_private_key(tx, backup)
        try:
            wrapped = await self.store.read_bytes(backup.wrapped_dek_ref)
        except ObjectMissing:
            raise IntegrityFailure("The backup's wrapped key is missing from the store.") from None
        return ObjectDecryptor(
            dek_resolver_for(wrapped, private_key, expected_key_version=backup.key_version),
            expected_backup_id=backup.id,
            expected_segment_size=backup.segment_size,
            expected_format_version=backup.format_version,
        )

    async def ciphertext(self, backup: BackupMetadata) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.store.read_stream(
                backup.storage_ref,
                full_segment_bytes(backup.segment_size, backup.format_version)
                * READ_CHUNK_SEGMENTS,
                # The header alone first, so every later chunk starts on a segment boundary
                # and is decrypted in place (in version 2, while the segments are raw;
                # compressed ones are small and copied).
                first_chunk_size=ObjectHeader.encoded_length(
                    backup.key_version, backup.format_version
                ),
            ):
                yield chunk
        except ObjectMissing:
            raise IntegrityFailure("The backup's ciphertext is missing from the store.") from None


@dataclass(frozen=True, slots=True)
class RestoreVerification:
    db: AppDatabase
    clock: Clock
    reader: BackupReader
    results: RestoreResults
    lease: timedelta

    async def verify_and_complete(
        self, actor: Actor, restore: RestoreRequest, backup: BackupMetadata, *, issue_token: bool
    ) -> RestoreOutcome:
        """Verify ``backup`` for the ``VERIFYING`` request, then complete it; a failure fails
        the request (and quarantines the backup on an integrity failure) and raises."""
        renewal = asyncio.create_task(self._keep_lease(restore.id))
        try:
            await self._verify(backup)
        except SsbgError as error:
            quarantine = isinstance(error, IntegrityFailure)
            await asyncio.shield(
                self.results.fail(actor, restore, backup, error.code, quarantine=quarantine)
            )
            raise
        except BaseException:
            # Cancelled (the client went away) or a bug: the backup is not suspect.
            await asyncio.shield(
                self.results.fail(actor, restore, backup, INTERRUPTED, quarantine=False)
            )
            raise
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        try:
            return await self.results.complete(actor, restore, backup, issue_token=issue_token)
        except CryptoShredded as shredded:
            # Its key was destroyed while it was being verified: nothing is released.
            await asyncio.shield(
                self.results.fail(actor, restore, backup, shredded.code, quarantine=False)
            )
            raise

    async def _verify(self, backup: BackupMetadata) -> None:
        async with self.db.transaction(write=False) as tx:
            # As stored now: a rewrap may have moved its DEK since the request was admitted.
            current = await tx.backups.get_or_none(backup.id)
            if current is None:
                raise BackupNotFound()
            decryptor = await self.reader.decryptor(tx, current)
        verified = await verify_object(self.reader.ciphertext(backup), decryptor)
        if mismatched_fields(recorded_facts(backup), measured_facts(verified)):
            raise IntegrityFailure("The backup does not match its recorded checksums.")

    async def _keep_lease(self, restore_id: UUID) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            with contextlib.suppress(SsbgError):
                now = self.clock.now()
                async with self.db.transaction(write=True) as tx:
                    await tx.restores.renew_lease(restore_id, now + self.lease, now)
