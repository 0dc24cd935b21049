"""Key version names and their lifecycle (SPEC §5), and the destruction certificate's form."""

import copy

import pytest

from ssbg.domain.destruction_certificate import (
    CERTIFICATE_TYPE,
    MalformedCertificate,
    check_shape,
    signing_input,
)
from ssbg.domain.enums import KeyVersionStatus as S
from ssbg.domain.errors import InvalidStateTransition
from ssbg.domain.key_versions import (
    check_key_transition,
    next_key_version,
    shred_confirmation,
)

CERTIFICATE = {
    "type": CERTIFICATE_TYPE,
    "key_version": "P-001",
    "public_key_sha256": "a" * 64,
    "destroyed_at": "2026-12-06T12:00:00.000000Z",
    "reason": "end of retention",
    "actor_id": None,
    "backups": [{"backup_id": "0b5e5a1e-5eed-4c0d-9a7e-000000000001", "ciphertext_sha512": "c"}],
    "audit_sequence": 42,
    "audit_entry_hash": "b" * 128,
    "signing_key_id": "d" * 64,
    "signature": "c2ln",
}


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ([], "P-001"),
        (["P-001"], "P-002"),
        (["P-002", "P-010", "P-009"], "P-011"),
        (["P-999"], "P-1000"),
    ],
)
def test_the_next_version_follows_the_highest(existing: list[str], expected: str) -> None:
    assert next_key_version(existing) == expected


@pytest.mark.parametrize(("current", "target"), [(S.ACTIVE, S.RETIRED), (S.RETIRED, S.DESTROYED)])
def test_allowed_key_moves(current: S, target: S) -> None:
    check_key_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.RETIRED, S.ACTIVE), (S.DESTROYED, S.RETIRED), (S.DESTROYED, S.ACTIVE)],
)
def test_a_key_never_comes_back(current: S, target: S) -> None:
    with pytest.raises(InvalidStateTransition):
        check_key_transition(current, target)


def test_the_confirmation_names_the_version() -> None:
    assert shred_confirmation("P-007") == "DESTROY P-007"


def test_the_signature_covers_every_field_but_itself() -> None:
    base = signing_input(CERTIFICATE)
    for field in CERTIFICATE:
        if field == "signature":
            continue
        changed = copy.deepcopy(CERTIFICATE)
        changed[field] = "x" if not isinstance(changed[field], int) else 43
        assert signing_input(changed) != base, field
    assert signing_input({**CERTIFICATE, "signature": "other"}) == base
    assert base.startswith(b'{"actor_id":null,"audit_entry_hash":"')  # sorted, no spaces


@pytest.mark.parametrize(
    "change",
    [
        {"type": "ssbg-key-destruction/v2"},
        {"extra": 1},
        {"public_key_sha256": "short"},
        {"audit_sequence": True},
        {"audit_sequence": 0},
        {"backups": [{"backup_id": "x"}]},
        {"audit_entry_hash": "b" * 127},
    ],
)
def test_a_certificate_of_another_shape_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(MalformedCertificate):
        check_shape({**CERTIFICATE, **change})


def test_a_certificate_of_this_shape_passes() -> None:
    check_shape(CERTIFICATE)
