"""Persistence of the audit chain: entries, the chain-head row, checkpoints, signing keys."""

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    Text,
    Update,
    bindparam,
    cast,
    exists,
    func,
    insert,
    join,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ssbg.domain.audit_chain import GENESIS_HASH, ChainedEntry
from ssbg.domain.audit_checkpoint import Checkpoint
from ssbg.domain.audit_verification import EntryColumns, HeadRef
from ssbg.domain.errors import AuditUnavailable
from ssbg.domain.incident import IncidentState
from ssbg.domain.queries import AuditEntryFilters
from ssbg.infrastructure.db.models import (
    AuditChainHead,
    AuditCheckpoint,
    AuditLogEntry,
    AuditSigningKey,
    SystemState,
)

_ENTRY_TABLE: Table = AuditLogEntry.__table__  # type: ignore[assignment]
_ENTRIES = _ENTRY_TABLE.c
_CHECKPOINTS = AuditCheckpoint.__table__.c

# The append path, built once. PostgreSQL: SQLite ignores FOR UPDATE (its write transaction
# already holds the database lock); the entry and the head move in one statement (a CTE).
_STATE = SystemState.__table__.c
# The head, locked, and the incident state the entry's level is computed from, in one round
# trip. The lock covers the head row only; the incident state is read as the statement's
# snapshot saw it when it started, so a change committed while it waited for the lock is
# older than what it returns — which the guard below catches.
_LOCK_HEAD = (
    select(
        AuditChainHead.sequence_number,
        AuditChainHead.entry_hash,
        _STATE.incident_level,
        _STATE.incident_changed_at,
        _STATE.last_alert_at,
    )
    .select_from(join(AuditChainHead, SystemState, true()))  # one row each: no join key
    .where(AuditChainHead.id == 1, _STATE.id == 1)
    .with_for_update(of=AuditChainHead)
)
# PostgreSQL, in the same round trip: ``SET LOCAL synchronous_commit TO OFF``.
_LOCK_HEAD_COMMIT_BEFORE_FLUSH = _LOCK_HEAD.add_columns(
    func.set_config("synchronous_commit", "off", True)
)
# The entry is inserted only while the stored incident state is still the one its incident
# level was computed from.
_INCIDENT_UNCHANGED = exists().where(
    _STATE.id == 1,
    _STATE.incident_level == bindparam("expected_incident_level"),
    _STATE.incident_changed_at.is_not_distinct_from(bindparam("expected_incident_changed_at")),
    _STATE.last_alert_at.is_not_distinct_from(bindparam("expected_last_alert_at")),
)
_APPEND = insert(_ENTRY_TABLE).from_select(
    [c.key for c in _ENTRY_TABLE.columns],
    select(*(bindparam(c.key, type_=c.type) for c in _ENTRY_TABLE.columns)).where(
        _INCIDENT_UNCHANGED
    ),
)
_MOVE_HEAD = (
    update(AuditChainHead)
    .where(AuditChainHead.id == 1)
    .values(
        sequence_number=bindparam("head_sequence_number"),
        entry_hash=bindparam("head_entry_hash"),
        updated_at=bindparam("head_updated_at"),
    )
)
_APPENDED = _APPEND.returning(_ENTRIES.sequence_number).cte("appended")
_APPEND_AND_MOVE_HEAD = _MOVE_HEAD.where(exists(select(_APPENDED.c.sequence_number))).add_cte(
    _APPENDED
)

_ENTRY_COLUMNS = frozenset(column.key for column in _ENTRY_TABLE.columns)
# Entries inserted after a guarded one, under the same lock: nothing left to guard.
_NO_GUARD = IncidentState(0, None, None)

_LAST_CHECKPOINT = select(func.max(_CHECKPOINTS.sequence_number))


@dataclass(frozen=True, slots=True)
class PostgresAppendStatements:
    """The statements an append sends on PostgreSQL, in the order it sends them.

    * ``lock_head``: lock the chain head and read the incident state, turning
      ``synchronous_commit`` off for the transaction; its row is what :meth:`LockedHead.of_row`
      reads.
    * ``append_and_move_head``: the guarded insert of the entry and the move of the head, one
      statement, bound with :func:`append_parameters`; one row updated, or none when the
      incident state changed.
    * ``last_checkpoint``: when the entry is due a checkpoint, the sequence number of the one
      before it (``NULL``: none).

    The very objects :class:`AuditRepository` executes, for a tool that must send exactly the
    gateway's SQL without its session (the audit benchmark's asyncpg floor compiles them).
    Not a second write path: the gateway appends only through ``AuditTrail.append``.
    """

    lock_head: Select[Any]
    append_and_move_head: Update
    last_checkpoint: Select[Any]


def postgres_append_statements() -> PostgresAppendStatements:
    """The append path's statements on PostgreSQL (built once, at import)."""
    return _POSTGRES_APPEND_STATEMENTS


_POSTGRES_APPEND_STATEMENTS = PostgresAppendStatements(
    lock_head=_LOCK_HEAD_COMMIT_BEFORE_FLUSH,
    append_and_move_head=_APPEND_AND_MOVE_HEAD,
    last_checkpoint=_LAST_CHECKPOINT,
)


def append_parameters(entry: ChainedEntry, incident: IncidentState) -> dict[str, Any]:
    """The values the append statements are bound to."""
    fields = entry.fields
    return {
        "event_id": fields.event_id,
        "sequence_number": fields.sequence_number,
        "occurred_at": fields.occurred_at,
        "actor_id": fields.actor_id,
        "actor_role": fields.actor_role,
        "action": fields.action,
        "resource": fields.resource,
        "result": fields.result,
        "details": dict(fields.details),
        "source_ip": fields.source_ip,
        "request_id": fields.request_id,
        "incident_level": fields.incident_level,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
        "head_sequence_number": fields.sequence_number,
        "head_entry_hash": entry.entry_hash,
        "head_updated_at": fields.occurred_at,
        "expected_incident_level": incident.level,
        "expected_incident_changed_at": incident.changed_at,
        "expected_last_alert_at": incident.last_alert_at,
    }


@dataclass(frozen=True, slots=True)
class ChainHead:
    sequence_number: int
    entry_hash: str

    @property
    def ref(self) -> HeadRef:
        return HeadRef(sequence=self.sequence_number, hash=self.entry_hash)


@dataclass(frozen=True, slots=True)
class LockedHead:
    head: ChainHead
    incident: IncidentState

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> Self:
        """From a row of the lock statement: the head's sequence number and hash, then the
        incident level, when it changed and the last alert (further columns are ignored)."""
        sequence_number, entry_hash, level, changed_at, last_alert_at = row[:5]
        return cls(
            ChainHead(sequence_number, entry_hash), IncidentState(level, changed_at, last_alert_at)
        )


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_head(self, *, commit_before_flush: bool = False) -> LockedHead:
        """Read the chain head, holding its row lock until the transaction ends, and the
        incident state in the same statement.

        PostgreSQL: ``SELECT … FOR UPDATE OF audit_chain_head`` serialises appenders across
        every replica; ``commit_before_flush`` also turns ``synchronous_commit`` off for this
        transaction (see ``UnitOfWork.lock_audit_head``). SQLite: ``FOR UPDATE`` is not
        emitted; the write transaction already holds the database's RESERVED lock from
        ``BEGIN IMMEDIATE``, which serialises appenders.

        The incident state is a fresh column read, never an object the session loaded earlier
        (which could be stale); a change this transaction has not flushed yet is flushed
        first, so it counts. It may still predate a change committed while this statement
        waited for the lock: :meth:`insert_entry` refuses such an entry, and the statement run
        again (the lock is held by then) reads the change.
        """
        await self._session.flush()
        connection = await self._session.connection()
        statement = _LOCK_HEAD_COMMIT_BEFORE_FLUSH if commit_before_flush else _LOCK_HEAD
        return LockedHead.of_row((await connection.execute(statement)).one())

    async def get_head(self) -> ChainHead:
        result = await self._session.execute(
            select(AuditChainHead.sequence_number, AuditChainHead.entry_hash).where(
                AuditChainHead.id == 1
            )
        )
        row = result.one()
        return ChainHead(sequence_number=row.sequence_number, entry_hash=row.entry_hash)

    async def insert_entry(self, entry: ChainedEntry, *, incident: IncidentState) -> bool:
        """Insert ``entry`` and move the chain head to it (one statement on PostgreSQL) if the
        stored incident state still equals ``incident``; ``False`` (nothing written) if not.

        ``AuditUnavailable`` if the entry's sequence number is taken already: rows were
        written behind the gateway, and the chain must be validated before it grows.

        The statements are built once (module level) and only bound here, from the entry's
        fields rather than an ORM object: every request appends, under the chain-head lock,
        so their construction cost is worth saving."""
        values = append_parameters(entry, incident)
        connection = await self._session.connection()
        try:
            if connection.dialect.name == "postgresql":
                moved = await connection.execute(_APPEND_AND_MOVE_HEAD, values)
                return moved.rowcount == 1
            if (await connection.execute(_APPEND, values)).rowcount != 1:
                return False
        except IntegrityError:
            raise AuditUnavailable("The audit chain cannot be extended: validate it.") from None
        await connection.execute(_MOVE_HEAD, values)
        return True

    async def insert_following(self, entries: Sequence[ChainedEntry]) -> None:
        """Insert entries that follow one :meth:`insert_entry` just inserted in this
        transaction (which still holds the chain-head lock, so the incident state cannot have
        changed since) in one batch, and move the head to the last."""
        if not entries:
            return
        rows = [
            {
                key: value
                for key, value in append_parameters(entry, _NO_GUARD).items()
                if key in _ENTRY_COLUMNS
            }
            for entry in entries
        ]
        connection = await self._session.connection()
        try:
            await connection.execute(insert(_ENTRY_TABLE), rows)
        except IntegrityError:
            raise AuditUnavailable("The audit chain cannot be extended: validate it.") from None
        await connection.execute(_MOVE_HEAD, append_parameters(entries[-1], _NO_GUARD))

    async def last_entry_of(self, action: str, resource: str) -> tuple[int, str] | None:
        """The sequence number and hash of the last ``action`` entry about ``resource``."""
        result = await self._session.execute(
            select(AuditLogEntry.sequence_number, AuditLogEntry.entry_hash)
            .where(AuditLogEntry.action == action, AuditLogEntry.resource == resource)
            .order_by(AuditLogEntry.sequence_number.desc())
            .limit(1)
        )
        row = result.one_or_none()
        return (int(row.sequence_number), str(row.entry_hash)) if row else None

    async def last_entry_with_action(self, action: str) -> AuditLogEntry | None:
        result = await self._session.execute(
            select(AuditLogEntry)
            .where(AuditLogEntry.action == action)
            .order_by(AuditLogEntry.sequence_number.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

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

    # -- checkpoints ------------------------------------------------------------------------

    async def last_checkpoint_sequence(self) -> int:
        """The newest checkpoint's sequence number, 0 when there is none."""
        result = await self._session.execute(_LAST_CHECKPOINT)
        return int(result.scalar_one() or 0)

    async def insert_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        self._session.add(checkpoint)
        await self._session.flush()

    async def list_checkpoints(self, after_sequence: int, limit: int) -> Sequence[AuditCheckpoint]:
        result = await self._session.execute(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.sequence_number > after_sequence)
            .order_by(AuditCheckpoint.sequence_number)
            .limit(limit)
        )
        return result.scalars().all()

    # -- bulk reads for validation and export (Core rows, keyset batches, flat memory) ----

    async def last_checkpoint_between(self, first: int, last: int) -> Checkpoint | None:
        """The newest checkpoint with ``first <= sequence <= last``, if any."""
        connection = await self._session.connection()
        key = _CHECKPOINTS.sequence_number
        statement = (
            select(*_checkpoint_columns(connection.dialect.name))
            .where(key >= first, key <= last)
            .order_by(key.desc())
            .limit(1)
        )
        row = (await connection.execute(statement)).first()
        return Checkpoint(*row) if row else None

    async def hash_before(self, sequence_number: int) -> str | None:
        """The ``prev_hash`` the entry at ``sequence_number`` must carry: the genesis hash for
        the first entry, else the stored hash of the entry before it (``None``: missing)."""
        if sequence_number == 1:
            return GENESIS_HASH
        result = await self._session.execute(
            select(AuditLogEntry.entry_hash).where(
                AuditLogEntry.sequence_number == sequence_number - 1
            )
        )
        return result.scalar_one_or_none()

    async def entry_column_batches(
        self, first: int, last: int | None, batch_size: int
    ) -> AsyncGenerator[list[EntryColumns], None]:  # rows are EntryColumns by construction
        """Entries ``first..last`` (``None``: to the end) in ascending order, as tuples of
        canonical text (see ``EntryColumns``), ``batch_size`` rows per query."""
        connection = await self._session.connection()
        columns = _canonical_entry_columns(connection.dialect.name)
        async for rows in _keyset_batches(
            connection, columns, _ENTRIES.sequence_number, first, last, batch_size
        ):
            yield rows

    async def checkpoints_between(
        self, first: int, last: int | None, *, limit: int | None = None
    ) -> list[Checkpoint]:
        """Checkpoints ``first..last`` (``None``: no upper bound), ascending."""
        connection = await self._session.connection()
        key = _CHECKPOINTS.sequence_number
        statement = (
            select(*_checkpoint_columns(connection.dialect.name))
            .where(key >= first)
            .order_by(key)
            .limit(limit)
        )
        if last is not None:
            statement = statement.where(key <= last)
        return [Checkpoint(*row) for row in await connection.execute(statement)]

    async def checkpoint_batches(
        self, first: int, last: int | None, batch_size: int
    ) -> AsyncGenerator[list[Checkpoint], None]:
        connection = await self._session.connection()
        columns = _checkpoint_columns(connection.dialect.name)
        async for rows in _keyset_batches(
            connection, columns, _CHECKPOINTS.sequence_number, first, last, batch_size
        ):
            yield [Checkpoint(*row) for row in rows]


async def _keyset_batches(
    connection: AsyncConnection,
    columns: list[ColumnElement[Any]],
    key: ColumnElement[int],
    first: int,
    last: int | None,
    batch_size: int,
) -> AsyncGenerator[list[Any], None]:
    """Rows with ``first <= key <= last`` in ascending order, one key span of ``batch_size`` per
    query. Each query names both ends of its span, so the planner always takes the unique
    index, whatever the table statistics say (an open-ended ``key >= n … LIMIT`` on a freshly
    loaded table was planned as a full scan and sort, once per batch). A short span (a gap, or
    the end) is followed by one look-up of where the keys resume."""
    start = first
    while last is None or start <= last:
        stop = start + batch_size - 1 if last is None else min(start + batch_size - 1, last)
        statement = select(*columns).where(key >= start, key <= stop).order_by(key)
        rows = list((await connection.execute(statement)).all())
        if rows:
            yield rows
        if len(rows) == stop - start + 1:
            start = stop + 1
            continue
        resume = (await connection.execute(select(func.min(key)).where(key > stop))).scalar()
        if resume is None:
            return
        start = int(resume)


def _checkpoint_columns(dialect: str) -> list[ColumnElement[Any]]:
    """In the order of ``Checkpoint``'s fields, the timestamp as its canonical text."""
    return [
        _CHECKPOINTS.sequence_number,
        _CHECKPOINTS.entry_hash,
        _canonical_timestamp(_CHECKPOINTS.created_at, dialect),
        _CHECKPOINTS.checkpoint_interval,
        _CHECKPOINTS.previous_checkpoint_sequence,
        _CHECKPOINTS.signing_key_id,
        _CHECKPOINTS.signature,
    ]


def _canonical_timestamp(column: ColumnElement[Any], dialect: str) -> ColumnElement[str]:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` computed by the database (SQLite stores exactly that)."""
    if dialect == "sqlite":
        return type_coerce(column, String)
    return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"', type_=String)


def _canonical_uuid(column: ColumnElement[Any], dialect: str) -> ColumnElement[str]:
    """Lowercase hyphenated text (SQLite stores 32 hex digits)."""
    if dialect != "sqlite":
        return cast(column, Text)
    raw = type_coerce(column, String)
    parts = [func.substr(raw, start, length) for start, length in _UUID_GROUPS]
    joined: ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        joined = joined + "-" + part
    return func.lower(joined, type_=String)


_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def _canonical_entry_columns(dialect: str) -> list[ColumnElement[Any]]:
    details = (
        type_coerce(_ENTRIES.details, String)
        if dialect == "sqlite"
        else cast(_ENTRIES.details, Text)
    )
    return [
        _ENTRIES.sequence_number,
        _canonical_uuid(_ENTRIES.event_id, dialect),
        _canonical_timestamp(_ENTRIES.occurred_at, dialect),
        _canonical_uuid(_ENTRIES.actor_id, dialect),
        _ENTRIES.actor_role,
        _ENTRIES.action,
        _ENTRIES.resource,
        _ENTRIES.result,
        details,
        _ENTRIES.source_ip,
        _ENTRIES.request_id,
        _ENTRIES.incident_level,
        _ENTRIES.prev_hash,
        _ENTRIES.entry_hash,
    ]
