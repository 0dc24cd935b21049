"""The backup lifecycle (SPEC §5) as an explicit state machine.

``PROCESSING → ACTIVE | FAILED``; ``ACTIVE ↔ QUARANTINED``; ``ACTIVE | QUARANTINED → DELETED``;
``ACTIVE | QUARANTINED | DELETED → CRYPTO_SHREDDED``. ``FAILED`` and ``CRYPTO_SHREDDED`` are
terminal. Every other move raises :class:`~ssbg.domain.errors.InvalidStateTransition`.

The services persist each allowed move as a row of ``backup_status_transitions`` and an audit
entry in the same transaction as the status change.
"""

from ssbg.domain.enums import BackupStatus
from ssbg.domain.errors import InvalidStateTransition

_S = BackupStatus

ALLOWED_TRANSITIONS: dict[BackupStatus, frozenset[BackupStatus]] = {
    _S.PROCESSING: frozenset({_S.ACTIVE, _S.FAILED}),
    _S.ACTIVE: frozenset({_S.QUARANTINED, _S.DELETED, _S.CRYPTO_SHREDDED}),
    _S.QUARANTINED: frozenset({_S.ACTIVE, _S.DELETED, _S.CRYPTO_SHREDDED}),
    _S.DELETED: frozenset({_S.CRYPTO_SHREDDED}),
    _S.FAILED: frozenset(),
    _S.CRYPTO_SHREDDED: frozenset(),
}

TERMINAL_STATUSES = frozenset(status for status, nxt in ALLOWED_TRANSITIONS.items() if not nxt)


def can_transition(current: BackupStatus, target: BackupStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def check_backup_transition(current: BackupStatus, target: BackupStatus) -> None:
    """Raise ``InvalidStateTransition`` (409) unless ``current → target`` is allowed."""
    if not can_transition(current, target):
        raise InvalidStateTransition(
            f"A backup cannot go from {current.value} to {target.value}.",
            {"from_status": current.value, "to_status": target.value},
        )
