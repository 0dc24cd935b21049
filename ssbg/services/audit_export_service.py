"""Evidence export: the audit chain as a JSON Lines bundle (``domain.audit_bundle``), streamed.

The export is recorded (``AUDIT_EXPORT`` with the requested range) before the first byte is
sent, and the bundle is read from one database snapshot, so it is internally consistent and
includes its own ``AUDIT_EXPORT`` entry when it runs to the head. Memory stays flat: entries
and checkpoints are read and sent in batches.

The bundle ends with a signed head: the audit signing key's signature over its last entry and
the header (range, chain head, export time, and the audit anchor the key store held). The
gateway signs what its database holds — it does not judge it: a history replaced below the
anchor is exported as found, and the anchor in the signed header lets the offline verifier
report it. The anchor is read after the export's own entry committed and before the snapshot,
so it never names an entry the snapshot lacks.
"""

from collections.abc import AsyncIterator

from ssbg import __version__
from ssbg.domain.audit_bundle import (
    BundleHeader,
    SignedHead,
    certificate_record,
    checkpoint_record,
    encode_record,
    end_record,
    entry_records,
    signed_head_input,
    signed_head_record,
)
from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import AUDIT_RESOURCE, AuditEvent
from ssbg.domain.audit_verification import AnchorRef, SequenceRange
from ssbg.domain.enums import AuditAction
from ssbg.domain.identity import Actor
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.audit_signing import CheckpointSigner, SigningKeyInfo
from ssbg.services.audit_anchor import AnchorKeeper
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
        anchor: AnchorKeeper,
    ) -> None:
        self._db = db
        self._trail = trail
        self._signer = signer
        self._clock = clock
        self._anchor = anchor

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
        anchor = (await self._anchor.read()).anchor  # after the commit, before the snapshot
        return self._stream(requested, key, None if anchor is None else anchor.ref)

    async def _stream(
        self, requested: SequenceRange, key: SigningKeyInfo, audit_anchor: AnchorRef | None
    ) -> AsyncIterator[bytes]:
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
                signing_key_id=key.key_id,
                public_key_pem=key.public_key_pem,
                audit_anchor=audit_anchor,
            )
            yield encode_record(header.as_record())
            entries = checkpoints = 0
            last_sequence, last_hash = first - 1, header.anchor_hash or ""
            async for rows in tx.audit.entry_column_batches(first, upper, BATCH_SIZE):
                entries += len(rows)
                last_sequence, last_hash = rows[-1][0], rows[-1][13]
                yield b"".join(encode_record(record) for record in entry_records(rows))
            async for batch in tx.audit.checkpoint_batches(first, upper, BATCH_SIZE):
                checkpoints += len(batch)
                yield b"".join(encode_record(checkpoint_record(c)) for c in batch)
            certificates = [
                certificate
                for certificate in await tx.key_versions.destruction_certificates()
                if first <= certificate["audit_sequence"] <= header.to_sequence
            ]
            for certificate in certificates:
                yield encode_record(certificate_record(certificate))
        head_record = await self._signed_head(header, last_sequence, last_hash)
        yield encode_record(signed_head_record(head_record))
        yield encode_record(end_record(entries, checkpoints, len(certificates)))

    async def _signed_head(
        self, header: BundleHeader, sequence_number: int, entry_hash: str
    ) -> SignedHead:
        """The signature over the last entry the bundle holds, as exported."""
        signature, key_id = await self._signer.sign(
            signed_head_input(header, sequence_number, entry_hash)
        )
        return SignedHead(sequence_number, entry_hash, key_id, signature)
