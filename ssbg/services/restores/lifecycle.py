"""The one place a restore request's status changes (SPEC §3 Restores).

:meth:`RestoreLifecycle.move` checks the domain's transition table, compare-and-sets the
status (with the other ``values``), raises when another writer moved the request first, and
appends the move's audit entry — in the caller's transaction, so they commit together.
Creating a request is an insert, not a move; everything after goes through here.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ssbg.domain.audit_events import AuditEvent, restore_resource
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import InvalidStateTransition
from ssbg.domain.identity import Actor
from ssbg.domain.restore_lifecycle import RestoreStatus, check_restore_transition
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import RestoreRequest
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class RestoreLifecycle:
    trail: AuditTrail
    clock: Clock

    async def try_move(
        self,
        tx: UnitOfWork,
        restore_id: UUID,
        current: RestoreStatus,
        target: RestoreStatus,
        actor: Actor | None,
        *,
        action: AuditAction,
        result: AuditResult = AuditResult.SUCCESS,
        details: Mapping[str, Any] | None = None,
        preceding_events: Sequence[AuditEvent] = (),
        lease_lapsed_before: datetime | None = None,
        **values: Any,
    ) -> RestoreRequest | None:
        """Move ``current → target`` setting ``values``; ``None`` when another writer moved
        the request first (or, with ``lease_lapsed_before``, its lease has not lapsed).

        ``InvalidStateTransition`` for a move the table forbids. The move's entry is
        ``action`` with ``result`` and ``details``; ``preceding_events`` are appended just
        before it."""
        check_restore_transition(current, target)
        moved = await tx.restores.change_status(
            restore_id,
            current,
            lease_lapsed_before=lease_lapsed_before,
            status=target,
            updated_at=self.clock.now(),
            **values,
        )
        if moved is None:
            return None
        for event in preceding_events:
            await self.trail.append(tx, event)
        await self.trail.append(
            tx,
            AuditEvent.by(
                actor,
                action,
                restore_resource(restore_id),
                result,
                backup_id=str(moved.backup_id),
                from_status=current.value,
                to_status=target.value,
                **(details or {}),
            ),
        )
        return moved

    async def move(
        self,
        tx: UnitOfWork,
        restore_id: UUID,
        current: RestoreStatus,
        target: RestoreStatus,
        actor: Actor | None,
        **options: Any,
    ) -> RestoreRequest:
        """:meth:`try_move`, raising ``InvalidStateTransition`` when the race was lost."""
        moved = await self.try_move(tx, restore_id, current, target, actor, **options)
        if moved is None:
            raise InvalidStateTransition("The restore request changed status meanwhile.")
        return moved
