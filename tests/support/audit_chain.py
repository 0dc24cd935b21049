"""Recompute the audit chain from the rows (a stand-in for the validator of another branch)."""

from collections.abc import Sequence

from sqlalchemy import select

from ssbg.domain.audit_chain import GENESIS_HASH, ChainedFields, compute_entry_hash
from ssbg.infrastructure.db.models import AuditLogEntry
from ssbg.services.unit_of_work import Database


async def audit_entries(db: Database) -> Sequence[AuditLogEntry]:
    async with db.transaction(write=False) as tx:
        result = await tx.session.execute(
            select(AuditLogEntry).order_by(AuditLogEntry.sequence_number)
        )
        return result.scalars().all()


async def assert_chain_valid(db: Database) -> Sequence[AuditLogEntry]:
    """Every hash recomputes, every link holds, sequence numbers run 1..n without a gap."""
    entries = await audit_entries(db)
    previous = GENESIS_HASH
    for expected_sequence, entry in enumerate(entries, start=1):
        assert entry.sequence_number == expected_sequence, "sequence gap or fork"
        assert entry.prev_hash == previous, f"broken link at {entry.sequence_number}"
        fields = ChainedFields(
            event_id=entry.event_id,
            sequence_number=entry.sequence_number,
            occurred_at=entry.occurred_at,
            action=entry.action,
            resource=entry.resource,
            result=entry.result,
            incident_level=entry.incident_level,
            actor_id=entry.actor_id,
            actor_role=entry.actor_role,
            details=entry.details,
            source_ip=entry.source_ip,
            request_id=entry.request_id,
        )
        assert compute_entry_hash(previous, fields) == entry.entry_hash, (
            f"hash mismatch at {entry.sequence_number}"
        )
        previous = entry.entry_hash
    return entries


async def entries_for(db: Database, resource: str) -> list[AuditLogEntry]:
    return [entry for entry in await audit_entries(db) if entry.resource == resource]
