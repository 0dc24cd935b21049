"""Row seals on the repositories' write path, and their check on every load (SPEC §13.7).

One place for both, as SQLAlchemy session events, so no repository can forget either:

* *write* — before every flush, each new or changed sealed row (see
  :class:`~ssbg.infrastructure.db.base.Sealed`) gets ``seal`` = MAC of its sealed fields
  (:mod:`ssbg.domain.row_seals`). Sealed fields are never written with a bare ``UPDATE``
  statement: status changes load the row under a lock, change it and flush.
* *read* — every sealed row loaded through the ORM (``load`` and ``refresh``) is checked; a row
  whose seal does not match raises :class:`~ssbg.domain.errors.TamperedRow` before any code
  can act on it. A row loaded as tampered is never re-sealed: a flush that would launder it
  raises too.

The session finds the integrity key in ``session.info`` (the unit of work puts it there); a
session without one cannot read or write a sealed row (``KeyUnavailable``: fail closed).

A database that existed before seals were introduced is sealed once, through
:class:`SealsRepository` (``ssbg.services.integrity_service``).
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryContext, Session, UOWTransaction, object_session

from ssbg.domain.errors import KeyUnavailable, TamperedRow
from ssbg.domain.row_seals import seal_message, sealed_field_names, tampered_resource
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.db.base import Sealed
from ssbg.infrastructure.db.models import (
    Alert,
    ApiKey,
    BackupMetadata,
    ConsoleSession,
    KeyVersion,
    Policy,
    RestoreRequest,
    RetentionRule,
    SystemState,
)

INTEGRITY_KEY = "ssbg_integrity_key"
_TAMPERED = "ssbg_tampered"
SEALED_MODELS: tuple[type[Sealed], ...] = (
    ApiKey,
    RestoreRequest,
    BackupMetadata,
    Policy,
    SystemState,
    KeyVersion,
    Alert,
    RetentionRule,
    ConsoleSession,
)
# What a database that predates seals can hold unsealed, and adoption seals once. A table born
# after seals (console sessions) never had an unsealed row the gateway wrote: one there was
# put by someone else, and adopting it would launder it.
ADOPTABLE_MODELS: tuple[type[Sealed], ...] = tuple(
    model for model in SEALED_MODELS if model is not ConsoleSession
)


def bind_integrity_key(session: AsyncSession, key: IntegrityKey) -> None:
    session.info[INTEGRITY_KEY] = key


def integrity_key_of(session: Session | AsyncSession) -> IntegrityKey:
    key = session.info.get(INTEGRITY_KEY)
    if not isinstance(key, IntegrityKey):
        raise KeyUnavailable("No integrity key: sealed records can be neither read nor written.")
    return key


def _table(row: Sealed) -> str:
    return str(row.__tablename__)  # type: ignore[attr-defined]


def _fields(row: Sealed) -> dict[str, Any]:
    return {name: getattr(row, name) for name in sealed_field_names(_table(row))}


def seal_of(key: IntegrityKey, table: str, values: Mapping[str, Any]) -> str:
    return key.seal(seal_message(table, values))


def _seal_changed_rows(session: Session, _context: UOWTransaction, _instances: object) -> None:
    for row in (*session.new, *session.dirty):
        if not isinstance(row, Sealed):
            continue
        if row.__dict__.get(_TAMPERED):
            raise TamperedRow(_table(row), tampered_resource(_table(row), _fields(row)))
        row.seal = seal_of(integrity_key_of(session), _table(row), _fields(row))


def _check_loaded_row(row: Sealed, context: QueryContext | None) -> None:
    session = context.session if context is not None else object_session(row)
    if session is None:
        raise KeyUnavailable("A sealed record was loaded outside a session.")
    table, fields = _table(row), _fields(row)
    if not integrity_key_of(session).seal_matches(seal_message(table, fields), row.seal):
        row.__dict__[_TAMPERED] = True
        raise TamperedRow(table, tampered_resource(table, fields))


def _check_refreshed_row(
    row: Sealed, context: QueryContext | None, attributes: Iterable[str] | None
) -> None:
    # A refresh of some attributes only (an expired one loaded again) leaves the rest as they
    # were checked; a whole row read again (populate_existing) is checked again.
    if attributes is None:
        _check_loaded_row(row, context)


def install() -> None:
    """Register the session and mapper events (idempotent)."""
    if event.contains(Session, "before_flush", _seal_changed_rows):
        return
    event.listen(Session, "before_flush", _seal_changed_rows)
    for model in SEALED_MODELS:
        event.listen(model, "load", _check_loaded_row)
        event.listen(model, "refresh", _check_refreshed_row)


install()


# -- sealing a database that predates seals ---------------------------------------------------


class SealsRepository:
    """Rows written before seals existed, read and sealed once (without the load check)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def unsealed_rows(self, model: type[Sealed]) -> Sequence[Mapping[str, Any]]:
        table: Table = model.__table__  # type: ignore[attr-defined]
        result = await self._session.execute(select(table).where(table.c.seal.is_(None)))
        return [dict(row._mapping) for row in result.all()]

    async def seal_row(self, model: type[Sealed], row: Mapping[str, Any], **changes: Any) -> None:
        """Seal one unsealed row, with ``changes`` applied to it first."""
        table: Table = model.__table__  # type: ignore[attr-defined]
        values = {**row, **changes}
        key = [table.c[column.name] == row[column.name] for column in table.primary_key.columns]
        seal = seal_of(integrity_key_of(self._session), table.name, values)
        await self._session.execute(
            update(table).where(*key, table.c.seal.is_(None)).values(**changes, seal=seal)
        )
