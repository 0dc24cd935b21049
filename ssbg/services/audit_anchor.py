"""Keeping the audit anchor (``domain.audit_anchor``): when it advances, and to what.

The protocol, in the order it runs:

1. ``AuditTrail.append`` calls :meth:`AnchorKeeper.schedule` inside the appending transaction.
   If the entry is a checkpoint's, or this process last advanced the anchor at least
   ``SSBG_AUDIT_ANCHOR_SECONDS`` ago, an advance to the entry is registered to run *after the
   commit* (``UnitOfWork.after_commit``); a later append in the same transaction moves that
   target to its own entry. Otherwise nothing happens: an append that is not due costs one
   clock read, never a file access.
2. After the commit (and PostgreSQL's WAL flush), the advance runs — so the anchor only ever
   names entries that are committed and durable. It reads the anchor file and verifies its
   signature. If the file already names this entry or a later one (another replica got there
   first), it stops: the anchor never moves backwards. Before moving it forward it checks that
   the entry the file names still has the file's hash in the database — otherwise the history
   below it was replaced, and advancing onto the replacement would launder it (the entry just
   appended is chained onto whatever the database held); the anchor then stays where it is,
   for validation to report, and the mismatch is logged. Then it signs the new statement and
   writes it with a compare-and-swap under the file's lock; if another process changed the
   file in between, it reads again and decides again.
3. A failure (key store unwritable, database unreachable for the check) is logged without
   detail and does not fail the request, whose transaction is committed already; the next
   append in this process retries.

Replicas sharing the key store each run this; their advances serialise on the lock and the
mark only ever rises, whichever replica writes it.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime

import structlog

from ssbg.domain.audit_anchor import (
    INVALID_ANCHOR,
    NO_ANCHOR,
    AnchorMalformed,
    AnchorReading,
    AuditAnchor,
    anchor_signing_input,
    decode_anchor,
    is_advance_due,
    replaces,
)
from ssbg.domain.audit_chain import ChainedEntry, format_timestamp
from ssbg.domain.errors import KeyUnavailable
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.audit_anchor import AnchorFile
from ssbg.infrastructure.crypto.audit_signing import CheckpointSignatureCheck, CheckpointSigner
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

log = structlog.get_logger("ssbg.audit")

AFTER_COMMIT_KEY = "audit-anchor"
# A lost swap means another writer raised the anchor (it never moves any other way), so the
# loop ends once the anchor reaches this writer's entry; the bound only guards against a file
# that keeps changing for another reason. Under load several replicas can each lose a few
# times in a row (seen with 5 attempts: three processes racing on two busy cores).
SWAP_ATTEMPTS = 100


@dataclass
class _Advance:
    """The after-commit callback of one transaction: advance to its last due entry."""

    keeper: "AnchorKeeper"
    sequence_number: int
    entry_hash: str
    checkpoint: bool

    def move_to(self, entry: ChainedEntry, *, checkpoint: bool) -> None:
        self.sequence_number = entry.fields.sequence_number
        self.entry_hash = entry.entry_hash
        self.checkpoint = self.checkpoint or checkpoint

    async def __call__(self) -> None:
        await self.keeper.advance_after_commit(self)


class AnchorKeeper:
    def __init__(
        self,
        db: AppDatabase,
        signer: CheckpointSigner,
        anchor_file: AnchorFile,
        clock: Clock,
        interval_seconds: int,
    ) -> None:
        if interval_seconds < 1:
            raise ValueError("interval_seconds must be positive")
        self._db = db
        self._signer = signer
        self._file = anchor_file
        self._clock = clock
        self._interval = interval_seconds
        self._last_advanced: datetime | None = None
        self._check: CheckpointSignatureCheck | None = None

    # -- the append path ------------------------------------------------------------------

    def schedule(self, tx: UnitOfWork, entry: ChainedEntry, *, checkpoint: bool) -> None:
        """Called by every append, inside its transaction: register an advance to ``entry``
        after the commit if one is due (see the module's docstring)."""
        pending = tx.pending_after_commit(AFTER_COMMIT_KEY)
        if isinstance(pending, _Advance):
            pending.move_to(entry, checkpoint=checkpoint)
        elif checkpoint or is_advance_due(self._last_advanced, self._clock.now(), self._interval):
            advance = _Advance(self, entry.fields.sequence_number, entry.entry_hash, checkpoint)
            tx.after_commit(AFTER_COMMIT_KEY, advance)

    async def advance_after_commit(self, target: _Advance) -> None:
        now = self._clock.now()
        if not target.checkpoint and not is_advance_due(self._last_advanced, now, self._interval):
            return  # another transaction of this process advanced it meanwhile
        previous, self._last_advanced = self._last_advanced, now
        try:
            await self.advance_to(target.sequence_number, target.entry_hash)
        except Exception as exc:  # the request's transaction is committed: log, retry later
            self._last_advanced = previous
            log.error(
                "audit_anchor_not_advanced",
                sequence=target.sequence_number,
                error=type(exc).__name__,
            )

    # -- the anchor itself ----------------------------------------------------------------

    async def advance_to(self, sequence_number: int, entry_hash: str) -> None:
        """Move the anchor to the committed entry ``sequence_number`` (whose hash is
        ``entry_hash``) unless it is there or beyond already, or the history below it no longer
        holds the entry it names (logged, left for validation to report).

        Raises ``KeyUnavailable`` when the key store cannot be written or signed with, and
        ``DatabaseUnavailable`` when the database cannot be read for the check.
        """
        for _ in range(SWAP_ATTEMPTS):
            raw = await self._read_raw()
            reading = await self._verify(raw)
            if reading.invalid:
                log.error("audit_anchor_invalid", sequence=sequence_number)
                return
            current = reading.anchor
            if not replaces(current, sequence_number):
                return
            if current is not None and not await self._holds(current):
                log.error(
                    "audit_anchor_history_replaced",
                    anchor_sequence=current.sequence_number,
                    sequence=sequence_number,
                )
                return
            content = (await self._sign(sequence_number, entry_hash)).encode()
            try:
                if await asyncio.to_thread(self._file.compare_and_swap, raw, content):
                    return
            except OSError as exc:
                raise KeyUnavailable("The audit anchor cannot be written.") from exc
        raise KeyUnavailable("The audit anchor kept changing while it was advanced.")

    async def read(self) -> AnchorReading:
        """The anchor the key store holds, its signature checked against the audit signing
        key (``KeyUnavailable`` when the key store cannot be read)."""
        return await self._verify(await self._read_raw())

    async def _read_raw(self) -> bytes | None:
        try:
            return await asyncio.to_thread(self._file.read)
        except OSError as exc:
            raise KeyUnavailable("The audit anchor cannot be read.") from exc

    async def _verify(self, raw: bytes | None) -> AnchorReading:
        if raw is None:
            return NO_ANCHOR
        try:
            anchor = decode_anchor(raw)
        except AnchorMalformed:
            return INVALID_ANCHOR
        check = await self._signature_check()
        if not check.verifies(anchor.signing_key_id, anchor.signing_input(), anchor.signature):
            return INVALID_ANCHOR
        return AnchorReading(anchor)

    async def _signature_check(self) -> CheckpointSignatureCheck:
        if self._check is None:
            info = await self._signer.key_info()
            self._check = CheckpointSignatureCheck.of_pems([info.public_key_pem])
        return self._check

    async def _holds(self, anchor: AuditAnchor) -> bool:
        """Whether the database's entry at the anchor's sequence still has its hash."""
        async with self._db.transaction(write=False) as tx:
            stored = await tx.audit.hash_before(anchor.sequence_number + 1)
        return stored == anchor.entry_hash

    async def _sign(self, sequence_number: int, entry_hash: str) -> AuditAnchor:
        anchored_at = format_timestamp(self._clock.now())
        signature, key_id = await self._signer.sign(
            anchor_signing_input(
                sequence_number=sequence_number, entry_hash=entry_hash, anchored_at=anchored_at
            )
        )
        return AuditAnchor(sequence_number, entry_hash, anchored_at, key_id, signature)
