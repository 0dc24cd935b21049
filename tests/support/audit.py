"""Reading the audit log directly, for assertions."""

from collections.abc import Sequence

from sqlalchemy import select

from ssbg.domain.audit_chain import GENESIS_HASH, ChainedFields, compute_entry_hash
from ssbg.infrastructure.db.models import AuditLogEntry
from ssbg.services.unit_of_work import AppDatabase


async def audit_entries(db: AppDatabase, action: str | None = None) -> Sequence[AuditLogEntry]:
    async with db.transaction(write=False) as tx:
        statement = select(AuditLogEntry).order_by(AuditLogEntry.sequence_number)
        if action is not None:
            statement = statement.where(AuditLogEntry.action == action)
        return (await tx.session.execute(statement)).scalars().all()


async def head_sequence(db: AppDatabase) -> int:
    async with db.transaction(write=False) as tx:
        return (await tx.audit.get_head()).sequence_number


def chain_problems(entries: Sequence[AuditLogEntry]) -> list[str]:
    """Independent re-check of a whole chain: sequence 1..n, links and hashes."""
    problems: list[str] = []
    previous = GENESIS_HASH
    for expected_sequence, entry in enumerate(entries, start=1):
        if entry.sequence_number != expected_sequence:
            problems.append(f"sequence {entry.sequence_number} where {expected_sequence} expected")
        if entry.prev_hash != previous:
            problems.append(f"link broken at {entry.sequence_number}")
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
        if compute_entry_hash(entry.prev_hash, fields) != entry.entry_hash:
            problems.append(f"hash mismatch at {entry.sequence_number}")
        previous = entry.entry_hash
    return problems


async def assert_chain_valid(db: AppDatabase) -> Sequence[AuditLogEntry]:
    """Every hash recomputes, every link holds, sequence numbers run 1..n without a gap."""
    entries = await audit_entries(db)
    assert chain_problems(entries) == []
    return entries


async def entries_for(db: AppDatabase, resource: str) -> list[AuditLogEntry]:
    return [entry for entry in await audit_entries(db) if entry.resource == resource]
