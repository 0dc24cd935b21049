"""Restore requests (SPEC §3 Restores): statuses and the moves between them.

``VERIFYING`` is internal and short-lived: a request that passed policy and whose backup is
being decrypted and checked. It holds the request's place in the P5/P6 rate counts from the
moment policy allowed it; a gateway that dies mid-verification leaves it for start-up
recovery to mark ``FAILED``.

Every move the product makes, and no other::

    VERIFYING ──► COMPLETED          the backup verified; a token is issued (or not, after
        │                            an approval: the requester collects it)
        └──────► FAILED              verification failed, or its gateway died
    PENDING_APPROVAL ──► VERIFYING   a second admin approved
        └──────────────► REJECTED    a second admin rejected
    COMPLETED ──► COMPLETED          a fresh token replaces the previous one
    COMPLETED ──► EXPIRED            the token lapsed (seen at a download)
    EXPIRED ────► COMPLETED          a fresh token
    COMPLETED | EXPIRED ──► PENDING_APPROVAL
                                     incident level 2 arrived before anyone approved it
    DENIED, REJECTED, FAILED         terminal (DENIED: policy said no, at the request)
"""

from enum import StrEnum

from ssbg.domain.errors import InvalidStateTransition


class RestoreStatus(StrEnum):
    VERIFYING = "VERIFYING"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    COMPLETED = "COMPLETED"
    DENIED = "DENIED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


_ALLOWED: dict[RestoreStatus, frozenset[RestoreStatus]] = {
    RestoreStatus.VERIFYING: frozenset({RestoreStatus.COMPLETED, RestoreStatus.FAILED}),
    RestoreStatus.PENDING_APPROVAL: frozenset({RestoreStatus.VERIFYING, RestoreStatus.REJECTED}),
    RestoreStatus.COMPLETED: frozenset(
        {RestoreStatus.COMPLETED, RestoreStatus.EXPIRED, RestoreStatus.PENDING_APPROVAL}
    ),
    RestoreStatus.EXPIRED: frozenset({RestoreStatus.COMPLETED, RestoreStatus.PENDING_APPROVAL}),
    RestoreStatus.DENIED: frozenset(),
    RestoreStatus.REJECTED: frozenset(),
    RestoreStatus.FAILED: frozenset(),
}

# Requests that used up a restore: they count towards the P5/P6 hourly limits.
COUNTED_STATUSES = frozenset(
    {
        RestoreStatus.VERIFYING,
        RestoreStatus.PENDING_APPROVAL,
        RestoreStatus.COMPLETED,
        RestoreStatus.EXPIRED,
        RestoreStatus.FAILED,
    }
)
# A download token can be (re-)issued for these.
TOKEN_STATUSES = frozenset({RestoreStatus.COMPLETED, RestoreStatus.EXPIRED})


def check_restore_transition(current: RestoreStatus, target: RestoreStatus) -> None:
    if target not in _ALLOWED[current]:
        raise InvalidStateTransition(
            f"A restore request that is {current.value} cannot become {target.value}.",
            {"from_status": current.value, "to_status": target.value},
        )
