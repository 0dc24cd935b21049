"""The audit trail: appending to the hash chain, and reading it back.

``AuditTrail.append`` runs inside the caller's write transaction, so an entry commits together
with the state change it records or not at all. Appends serialise on the chain-head row (see
``UnitOfWork.lock_audit_head``); the lock is held until the caller commits, so callers append
as late in their transaction as they can. Under the lock an append takes two round trips (the
insert-and-move-head statement, then COMMIT). The statement that takes the lock also reads the
incident state the entry's level is computed from; the insert only happens while that state is
still the stored one (a change committed while the lock statement waited is caught there).

An entry that a detection rule watches is handed to the detector (``observer``) in the same
transaction, so the alert it raises commits with it (SPEC §13.2).

The entry that reaches a multiple of the checkpoint interval also gets its signed checkpoint,
in the same transaction: if the signing key cannot be used, neither is written (fail closed).
That entry, and at least one every ``SSBG_AUDIT_ANCHOR_SECONDS``, also moves the audit anchor
in the key store once the transaction has committed (``services.audit_anchor``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import uuid4

from ssbg.domain.audit_chain import (
    ChainedEntry,
    ChainedFields,
    NotCanonical,
    check_canonical,
    compute_entry_hash,
    format_timestamp,
)
from ssbg.domain.audit_checkpoint import checkpoint_signing_input, is_checkpoint_due
from ssbg.domain.audit_events import AUDIT_RESOURCE, AuditEvent
from ssbg.domain.detection import TRIGGERING_ACTIONS
from ssbg.domain.enums import AuditAction
from ssbg.domain.errors import AuditUnavailable
from ssbg.domain.identity import Actor
from ssbg.domain.incident import IncidentState, effective_incident_level
from ssbg.domain.queries import AuditEntryFilters
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.audit_signing import CheckpointSigner
from ssbg.infrastructure.db.models import AuditCheckpoint, AuditLogEntry
from ssbg.repositories.audit_repository import ChainHead
from ssbg.services.audit_anchor import AnchorKeeper
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

MAX_PAGE = 100
# The lock statement reads the incident state as it was when the statement started; if a
# change committed while it waited (an incident change appends, so it held that lock), the
# guarded insert writes nothing and the statement runs again, holding the lock by then.
APPEND_ATTEMPTS = 3


class EntryObserver(Protocol):
    async def observe(self, tx: UnitOfWork, entry: ChainedEntry) -> None: ...


class AuditTrail:
    def __init__(
        self,
        clock: Clock,
        signer: CheckpointSigner,
        checkpoint_interval: int,
        anchor: AnchorKeeper,
    ) -> None:
        if checkpoint_interval < 1:
            raise ValueError("checkpoint_interval must be positive")
        self._clock = clock
        self._signer = signer
        self._checkpoint_interval = checkpoint_interval
        self.anchor = anchor
        # The detector (``ssbg.services.detection``), set once the services are wired.
        self.observer: EntryObserver | None = None

    @property
    def checkpoint_interval(self) -> int:
        """The interval this process checkpoints at (declared in its ``SYSTEM_START``)."""
        return self._checkpoint_interval

    async def append(self, tx: UnitOfWork, event: AuditEvent) -> ChainedEntry:
        if not tx.writable:
            raise AuditUnavailable("Audit entries are only appended in write transactions.")
        try:
            check_canonical(event.details)
        except NotCanonical as exc:
            raise AuditUnavailable(f"Audit details are not canonical: {exc}") from None
        for _ in range(APPEND_ATTEMPTS):
            locked = await tx.lock_audit_head()
            entry = self.next_entry(locked.head, locked.incident, event)
            if await tx.audit.insert_entry(entry, incident=locked.incident):
                checkpoint = is_checkpoint_due(
                    entry.fields.sequence_number, self._checkpoint_interval
                )
                if checkpoint:
                    await self._write_checkpoint(tx, entry)
                self.anchor.schedule(tx, entry, checkpoint=checkpoint)
                await self._observe(tx, entry)
                return entry
        raise AuditUnavailable("The incident state kept changing during an audit append.")

    async def append_many(self, tx: UnitOfWork, events: Sequence[AuditEvent]) -> list[ChainedEntry]:
        """Many entries, in order, under one lock and in one batch (thousands of status
        changes of one crypto-shred): each chained, checkpointed and anchored exactly as
        :meth:`append` would do it one by one."""
        if not events:
            return []
        if not tx.writable:
            raise AuditUnavailable("Audit entries are only appended in write transactions.")
        for event in events:
            try:
                check_canonical(event.details)
            except NotCanonical as exc:
                raise AuditUnavailable(f"Audit details are not canonical: {exc}") from None
        for _ in range(APPEND_ATTEMPTS):
            locked = await tx.lock_audit_head()
            entries, head = [], locked.head
            for event in events:
                entry = self.next_entry(head, locked.incident, event)
                entries.append(entry)
                head = ChainHead(entry.fields.sequence_number, entry.entry_hash)
            # The first insert is guarded (see ``append``); the lock is ours from then on.
            if await tx.audit.insert_entry(entries[0], incident=locked.incident):
                await tx.audit.insert_following(entries[1:])
                checkpointed = False
                for entry in entries:
                    if is_checkpoint_due(entry.fields.sequence_number, self._checkpoint_interval):
                        await self._write_checkpoint(tx, entry)
                        checkpointed = True
                self.anchor.schedule(tx, entries[-1], checkpoint=checkpointed)
                for entry in entries:
                    await self._observe(tx, entry)
                return entries
        raise AuditUnavailable("The incident state kept changing during an audit append.")

    async def _observe(self, tx: UnitOfWork, entry: ChainedEntry) -> None:
        """Hand an entry some detection rule watches to the detector, in this transaction:
        an alert it raises commits with the entry, or neither does."""
        if self.observer is not None and entry.fields.action in TRIGGERING_ACTIONS:
            await self.observer.observe(tx, entry)

    def next_entry(
        self, head: ChainHead, incident: IncidentState, event: AuditEvent
    ) -> ChainedEntry:
        """``event`` as the entry after ``head``, now, at the level ``incident`` gives now."""
        now = self._clock.now()
        fields = ChainedFields(
            event_id=uuid4(),
            sequence_number=head.sequence_number + 1,
            occurred_at=now,
            action=event.action.value,
            resource=event.resource,
            result=event.result.value,
            incident_level=int(
                effective_incident_level(
                    incident.level, incident.changed_at, incident.last_alert_at, now
                )
            ),
            actor_id=event.actor_id,
            actor_role=event.actor_role,
            details=event.details,
            source_ip=event.source_ip,
            request_id=event.request_id,
        )
        entry_hash = compute_entry_hash(head.entry_hash, fields)
        return ChainedEntry(fields, prev_hash=head.entry_hash, entry_hash=entry_hash)

    async def _write_checkpoint(self, tx: UnitOfWork, entry: ChainedEntry) -> None:
        previous = await tx.audit.last_checkpoint_sequence()
        await tx.audit.insert_checkpoint(await self.signed_checkpoint(entry, previous))

    async def signed_checkpoint(self, entry: ChainedEntry, previous: int) -> AuditCheckpoint:
        """The checkpoint of ``entry``, signed; ``previous``: the checkpoint before it (0: none)."""
        created_at = format_timestamp(entry.fields.occurred_at)
        signature, key_id = await self._signer.sign(
            checkpoint_signing_input(
                sequence_number=entry.fields.sequence_number,
                entry_hash=entry.entry_hash,
                created_at=created_at,
                checkpoint_interval=self._checkpoint_interval,
                previous_checkpoint_sequence=previous,
            )
        )
        return AuditCheckpoint(
            sequence_number=entry.fields.sequence_number,
            entry_hash=entry.entry_hash,
            created_at=entry.fields.occurred_at,
            checkpoint_interval=self._checkpoint_interval,
            previous_checkpoint_sequence=previous,
            signature=signature,
            signing_key_id=key_id,
        )


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: Sequence[AuditLogEntry]
    next_after_sequence: int | None


@dataclass(frozen=True, slots=True)
class CheckpointPage:
    checkpoints: Sequence[AuditCheckpoint]
    next_after_sequence: int | None


class AuditReader:
    """Review access to the log. Reading is itself recorded (``AUDIT_READ``)."""

    def __init__(self, db: AppDatabase, trail: AuditTrail) -> None:
        self._db = db
        self._trail = trail

    async def list_entries(
        self,
        actor: Actor,
        filters: AuditEntryFilters,
        after_sequence: int,
        limit: int,
    ) -> AuditPage:
        limit = max(1, min(limit, MAX_PAGE))
        async with self._db.transaction(write=True) as tx:
            entries = await tx.audit.list_entries(filters, after_sequence, limit)
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.AUDIT_READ,
                    AUDIT_RESOURCE,
                    view="entries",
                    after_sequence=after_sequence,
                    returned=len(entries),
                    filters={k: v for k, v in _describe(filters).items() if v is not None},
                ),
            )
        next_after = entries[-1].sequence_number if len(entries) == limit else None
        return AuditPage(entries=entries, next_after_sequence=next_after)

    async def list_checkpoints(
        self, actor: Actor, after_sequence: int, limit: int
    ) -> CheckpointPage:
        limit = max(1, min(limit, MAX_PAGE))
        async with self._db.transaction(write=True) as tx:
            checkpoints = await tx.audit.list_checkpoints(after_sequence, limit)
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.AUDIT_READ,
                    AUDIT_RESOURCE,
                    view="checkpoints",
                    after_sequence=after_sequence,
                    returned=len(checkpoints),
                ),
            )
        next_after = checkpoints[-1].sequence_number if len(checkpoints) == limit else None
        return CheckpointPage(checkpoints=checkpoints, next_after_sequence=next_after)

    async def head(self) -> ChainHead:
        async with self._db.transaction(write=False) as tx:
            return await tx.audit.get_head()


def _describe(filters: AuditEntryFilters) -> dict[str, str | None]:
    return {
        "action": filters.action,
        "result": filters.result,
        "actor_id": str(filters.actor_id) if filters.actor_id else None,
        "resource": filters.resource,
        "from": filters.occurred_from.isoformat() if filters.occurred_from else None,
        "to": filters.occurred_to.isoformat() if filters.occurred_to else None,
    }
