"""Evidence export: the audit chain as a JSON Lines bundle (``domain.audit_bundle``), streamed.

The export is recorded (``AUDIT_EXPORT`` with the requested range) before the first byte is
sent, and the bundle is read from one database snapshot, so it is internally consistent and
includes its own ``AUDIT_EXPORT`` entry when it runs to the head. Memory stays flat: entries
and checkpoints are read and sent in batches.
"""

from collections.abc import AsyncIterator

from ssbg import __version__
from ssbg.domain.audit_bundle import (
    BundleHeader,
    checkpoint_record,
    encode_record,
    end_record,
    entry_records,
)
from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import AUDIT_RESOURCE, AuditEvent
from ssbg.domain.audit_verification import SequenceRange
from ssbg.domain.enums import AuditAction
from ssbg.domain.identity import Actor
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.audit_signing import CheckpointSigner, SigningKeyInfo
from ssbg.services.audit_service import AuditTrail
from ssbg.services.audit_validation_service import BATCH_SIZE
from ssbg.services.unit_of_work import AppDatabase


class AuditExportService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        signer: CheckpointSigner,
        clock: Clock,
        checkpoint_interval: int,
    ) -> None:
        self._db = db
        self._trail = trail
        self._signer = signer
        self._clock = clock
        self._checkpoint_interval = checkpoint_interval

    async def export_bundle(self, actor: Actor, requested: SequenceRange) -> AsyncIterator[bytes]:
        """Check the request and record it, then return the bundle's byte stream.

        Everything that can be refused is refused here, before a response starts.
        """
        key = await self._signer.key_info()
        async with self._db.transaction(write=True) as tx:
            requested.check_start((await tx.audit.get_head()).sequence_number)
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.AUDIT_EXPORT,
                    AUDIT_RESOURCE,
                    from_sequence=requested.from_sequence,
                    to_sequence=requested.to_sequence,
                ),
            )
        return self._stream(requested, key)

    async def _stream(self, requested: SequenceRange, key: SigningKeyInfo) -> AsyncIterator[bytes]:
        async with self._db.snapshot() as tx:
            head = await tx.audit.get_head()
            first = requested.first
            reaches_head = requested.reaches(head.sequence_number)
            upper = None if reaches_head else requested.to_sequence
            header = BundleHeader(
                generator=f"ssbg {__version__}",
                exported_at=format_timestamp(self._clock.now()),
                from_sequence=first,
                to_sequence=head.sequence_number if upper is None else upper,
                anchor_hash=await tx.audit.hash_before(first),
                chain_head=head.ref,
                checkpoint_interval=self._checkpoint_interval,
                signing_key_id=key.key_id,
                public_key_pem=key.public_key_pem,
            )
            yield encode_record(header.as_record())
            entries = checkpoints = 0
            async for rows in tx.audit.entry_column_batches(first, upper, BATCH_SIZE):
                entries += len(rows)
                yield b"".join(encode_record(record) for record in entry_records(rows))
            async for batch in tx.audit.checkpoint_batches(first, upper, BATCH_SIZE):
                checkpoints += len(batch)
                yield b"".join(encode_record(checkpoint_record(c)) for c in batch)
            yield encode_record(end_record(entries, checkpoints))
