"""The database is not trusted (SPEC §13.7): sealing an upgraded database once, and
recording the tampering the seals reveal.

*Adoption.* A database written before seals existed has rows with no seal, and API keys and
download tokens stored as bare SHA-256. The first start of a version with seals (or
``ssbg init`` on such a database) turns each stored SHA-256 into its keyed verifier, seals
every row, appends ``INTEGRITY_ADOPT`` and — once that has committed — records in the key
store that this key store's database is sealed. From then on an unsealed row is a tampered
one: no later start adopts anything, whatever the database says, since only the key store's
holder could undo that record. (A crash before the record only repeats the harmless step;
the one window in which a database writer could have a row adopted is the upgrade itself.)

*Tampering.* A row whose seal does not match raises ``TamperedRow`` wherever it is read; the
request fails closed, and :meth:`IntegrityService.record_tampering` appends
``TAMPERING_DETECTED`` naming the row.
"""

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from ssbg.domain.audit_events import SYSTEM_RESOURCE, AuditEvent
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import TamperedRow
from ssbg.domain.identity import RequestContext
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.models import ApiKey, RestoreRequest
from ssbg.repositories.sealing import ADOPTABLE_MODELS
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase

log = structlog.get_logger("ssbg.integrity")


class IntegrityService:
    def __init__(
        self, db: AppDatabase, trail: AuditTrail, key_store: FileKeyStore, integrity: IntegrityKey
    ) -> None:
        self._db = db
        self._trail = trail
        self._keys = key_store
        self._integrity = integrity

    def _verifiers_of(self, model: type, row: Mapping[str, Any]) -> dict[str, Any]:
        """An earlier version's bare SHA-256 of a secret, as its keyed verifier."""
        if model is ApiKey:
            return {"key_hash": self._integrity.verifier(row["key_hash"])}
        if model is RestoreRequest and row["token_hash"] is not None:
            return {"token_hash": self._integrity.verifier(row["token_hash"])}
        return {}

    async def adopt_if_needed(self) -> dict[str, int] | None:
        """Seal an initialised database that predates seals (see the module doc); the number
        of rows sealed per table, or ``None`` if there was nothing to adopt."""
        if await asyncio.to_thread(self._keys.integrity_adopted):
            return None
        async with self._db.transaction(write=True) as tx:
            if not await tx.system_state.is_initialized():
                return None  # a new database is sealed from its first row by ``ssbg init``
            sealed: dict[str, int] = {}
            for model in ADOPTABLE_MODELS:
                rows = await tx.seals.unsealed_rows(model)
                for row in rows:
                    await tx.seals.seal_row(model, row, **self._verifiers_of(model, row))
                sealed[str(model.__tablename__)] = len(rows)  # type: ignore[attr-defined]
            await self._trail.append(
                tx, AuditEvent.by(None, AuditAction.INTEGRITY_ADOPT, SYSTEM_RESOURCE, sealed=sealed)
            )
        await asyncio.to_thread(self._keys.mark_integrity_adopted)
        log.info("integrity_adopted", **sealed)
        return sealed

    async def mark_sealed_from_birth(self) -> None:
        """A database ``ssbg init`` created is sealed from its first row."""
        await asyncio.to_thread(self._keys.mark_integrity_adopted)

    async def record_tampering(self, error: TamperedRow, context: RequestContext) -> None:
        """Append ``TAMPERING_DETECTED`` for a row whose seal did not match. Never raises: the
        request it interrupted fails closed either way."""
        log.error("tampering_detected", table=error.table, resource=error.resource)
        try:
            async with self._db.transaction(write=True) as tx:
                await self._trail.append(
                    tx,
                    AuditEvent(
                        action=AuditAction.TAMPERING_DETECTED,
                        resource=error.resource,
                        result=AuditResult.FAILED,
                        details={"table": error.table},
                        source_ip=context.source_ip,
                        request_id=context.request_id,
                    ),
                )
        except Exception as exc:
            log.error("tampering_not_recorded", error=type(exc).__name__)
