from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.errors import TamperedRow
from ssbg.domain.row_seals import tampered_resource
from ssbg.infrastructure.db.models import (
    ApiKey,
    BackupMetadata,
    KeyVersion,
    Policy,
    RestoreRequest,
    SystemState,
)
from ssbg.repositories.sealing import integrity_key_of, seal_of

_STATE = SystemState.__table__.c


class SystemStateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, *, for_update: bool = False) -> SystemState:
        statement = select(SystemState).where(SystemState.id == 1)
        if for_update:
            statement = statement.with_for_update()
        result = await self._session.execute(statement)
        return result.scalar_one()

    async def is_initialized(self) -> bool:
        """Whether ``ssbg init`` ran (read before the row may be sealed: see
        :meth:`seal_if_pristine`; the answer decides nothing but whether to initialise)."""
        result = await self._session.execute(select(_STATE.initialized_at).where(_STATE.id == 1))
        return result.scalar_one() is not None

    async def seal_if_pristine(self) -> None:
        """Seal the row a migration seeded, in a database nobody initialised yet.

        A seeded row has no seal (migrations have no key). It is sealed only while the
        database is pristine — not initialised, and holding no key, key version, backup,
        restore or policy — so a writer of the database cannot have an unsealed state adopted
        (only wiping everything would bring that back, and that grants nothing). Otherwise an
        unsealed row is tampered: ``TamperedRow``.
        """
        row = (
            await self._session.execute(
                select(SystemState.__table__).where(_STATE.id == 1).with_for_update()
            )
        ).one()
        if row.seal is not None:
            return
        stored = await self._session.execute(
            select(
                exists(select(ApiKey.id))
                | exists(select(KeyVersion.version))
                | exists(select(BackupMetadata.id))
                | exists(select(RestoreRequest.id))
                | exists(select(Policy.id))
            )
        )
        values = dict(row._mapping)
        if row.initialized_at is not None or stored.scalar_one():
            raise TamperedRow("system_state", tampered_resource("system_state", values))
        seal = seal_of(integrity_key_of(self._session), "system_state", values)
        await self._session.execute(
            update(SystemState).where(_STATE.id == 1, _STATE.seal.is_(None)).values(seal=seal)
        )
