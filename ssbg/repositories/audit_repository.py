"""Persistence of the audit chain: entries, the chain-head row, signing keys."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.infrastructure.db.models import AuditChainHead, AuditLogEntry, AuditSigningKey


@dataclass(frozen=True, slots=True)
class ChainHead:
    sequence_number: int
    entry_hash: str


@dataclass(frozen=True, slots=True)
class AuditEntryFilters:
    action: str | None = None
    result: str | None = None
    actor_id: UUID | None = None
    resource: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_head(self) -> ChainHead:
        """Read the chain head, holding its row lock until the transaction ends.

        PostgreSQL: ``SELECT … FOR UPDATE`` serialises appenders across every replica.
        SQLite: ``FOR UPDATE`` is not emitted; the write transaction already holds the
        database's RESERVED lock from ``BEGIN IMMEDIATE``, which serialises appenders.
        """
        result = await self._session.execute(
            select(AuditChainHead.sequence_number, AuditChainHead.entry_hash)
            .where(AuditChainHead.id == 1)
            .with_for_update()
        )
        row = result.one()
        return ChainHead(sequence_number=row.sequence_number, entry_hash=row.entry_hash)

    async def get_head(self) -> ChainHead:
        result = await self._session.execute(
            select(AuditChainHead.sequence_number, AuditChainHead.entry_hash).where(
                AuditChainHead.id == 1
            )
        )
        row = result.one()
        return ChainHead(sequence_number=row.sequence_number, entry_hash=row.entry_hash)

    async def insert_entry(self, entry: AuditLogEntry, at: datetime) -> None:
        self._session.add(entry)
        await self._session.flush()
        await self._session.execute(
            update(AuditChainHead)
            .where(AuditChainHead.id == 1)
            .values(
                sequence_number=entry.sequence_number, entry_hash=entry.entry_hash, updated_at=at
            )
        )

    async def list_entries(
        self, filters: AuditEntryFilters, after_sequence: int, limit: int
    ) -> Sequence[AuditLogEntry]:
        statement = (
            select(AuditLogEntry)
            .where(AuditLogEntry.sequence_number > after_sequence)
            .order_by(AuditLogEntry.sequence_number)
            .limit(limit)
        )
        if filters.action is not None:
            statement = statement.where(AuditLogEntry.action == filters.action)
        if filters.result is not None:
            statement = statement.where(AuditLogEntry.result == filters.result)
        if filters.actor_id is not None:
            statement = statement.where(AuditLogEntry.actor_id == filters.actor_id)
        if filters.resource is not None:
            statement = statement.where(AuditLogEntry.resource == filters.resource)
        if filters.occurred_from is not None:
            statement = statement.where(AuditLogEntry.occurred_at >= filters.occurred_from)
        if filters.occurred_to is not None:
            statement = statement.where(AuditLogEntry.occurred_at < filters.occurred_to)
        result = await self._session.execute(statement)
        return result.scalars().all()

    def add_signing_key(self, signing_key: AuditSigningKey) -> None:
        self._session.add(signing_key)

    async def get_signing_key_or_none(self, key_id: str) -> AuditSigningKey | None:
        return await self._session.get(AuditSigningKey, key_id)
