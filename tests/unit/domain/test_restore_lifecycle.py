import pytest

from ssbg.domain.errors import InvalidStateTransition
from ssbg.domain.restore_lifecycle import RestoreStatus, check_restore_transition
from ssbg.domain.restore_tokens import token_expired

S = RestoreStatus


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.VERIFYING, S.COMPLETED),
        (S.VERIFYING, S.FAILED),
        (S.PENDING_APPROVAL, S.VERIFYING),
        (S.PENDING_APPROVAL, S.REJECTED),
        (S.COMPLETED, S.EXPIRED),
        (S.EXPIRED, S.COMPLETED),
        (S.COMPLETED, S.PENDING_APPROVAL),
        (S.EXPIRED, S.PENDING_APPROVAL),
        (S.COMPLETED, S.COMPLETED),  # a fresh download token
    ],
)
def test_allowed_moves(current: RestoreStatus, target: RestoreStatus) -> None:
    check_restore_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.DENIED, S.COMPLETED),
        (S.REJECTED, S.VERIFYING),
        (S.FAILED, S.COMPLETED),
        (S.PENDING_APPROVAL, S.COMPLETED),
        (S.VERIFYING, S.PENDING_APPROVAL),
        (S.VERIFYING, S.VERIFYING),
        (S.PENDING_APPROVAL, S.FAILED),
        (S.COMPLETED, S.FAILED),
        (S.EXPIRED, S.EXPIRED),
    ],
)
def test_illegal_moves_raise(current: RestoreStatus, target: RestoreStatus) -> None:
    with pytest.raises(InvalidStateTransition):
        check_restore_transition(current, target)


def test_token_expiry_is_inclusive_of_the_expiry_instant() -> None:
    from datetime import UTC, datetime, timedelta

    expires = datetime(2026, 1, 1, tzinfo=UTC)
    assert not token_expired(expires, expires - timedelta(microseconds=1))
    assert token_expired(expires, expires)
    assert token_expired(None, expires)
