import itertools

import pytest

from ssbg.domain.backup_lifecycle import (
    TERMINAL_STATUSES,
    can_transition,
    check_backup_transition,
)
from ssbg.domain.enums import BackupStatus as S
from ssbg.domain.errors import InvalidStateTransition

ALLOWED = {
    (S.PROCESSING, S.ACTIVE),
    (S.PROCESSING, S.FAILED),
    (S.ACTIVE, S.QUARANTINED),
    (S.QUARANTINED, S.ACTIVE),
    (S.ACTIVE, S.DELETED),
    (S.QUARANTINED, S.DELETED),
    (S.ACTIVE, S.CRYPTO_SHREDDED),
    (S.QUARANTINED, S.CRYPTO_SHREDDED),
    (S.DELETED, S.CRYPTO_SHREDDED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_exactly_the_moves_of_spec_section_5_are_allowed(current: S, target: S) -> None:
    expected = (current, target) in ALLOWED
    assert can_transition(current, target) is expected
    if expected:
        check_backup_transition(current, target)
    else:
        with pytest.raises(InvalidStateTransition) as raised:
            check_backup_transition(current, target)
        assert raised.value.status == 409
        assert raised.value.details == {"from_status": current.value, "to_status": target.value}


def test_failed_and_crypto_shredded_are_terminal() -> None:
    assert {S.FAILED, S.CRYPTO_SHREDDED} == TERMINAL_STATUSES
