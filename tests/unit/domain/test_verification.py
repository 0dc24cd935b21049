from datetime import UTC, datetime, timedelta

import pytest

from ssbg.domain.enums import BackupStatus, Classification
from ssbg.domain.errors import Conflict, CryptoShredded, InvalidStateTransition
from ssbg.domain.verification import (
    VERIFICATION_REQUIRED,
    ObjectFacts,
    VerifySelection,
    mismatched_fields,
    release_refusal,
    verify_refusal,
)

QUARANTINED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        (BackupStatus.ACTIVE, None),
        (BackupStatus.QUARANTINED, None),
        (BackupStatus.CRYPTO_SHREDDED, CryptoShredded),
        (BackupStatus.DELETED, InvalidStateTransition),
        (BackupStatus.FAILED, InvalidStateTransition),
        (BackupStatus.PROCESSING, InvalidStateTransition),
    ],
)
def test_only_backups_with_objects_and_a_key_can_be_verified(
    status: BackupStatus, refusal: type[Exception] | None
) -> None:
    found = verify_refusal(status)
    assert (type(found) if found else None) is refusal
    if isinstance(found, InvalidStateTransition):
        assert found.details == {"backup_status": status.value}


@pytest.mark.parametrize(
    ("verified_at", "result", "released"),
    [
        (None, None, False),  # never verified
        (QUARANTINED_AT - SECOND, "VALID", False),  # verified before the quarantine
        (QUARANTINED_AT, "INVALID", False),  # the verification that quarantined it
        (QUARANTINED_AT, "VALID", False),  # not *after* it
        (QUARANTINED_AT + SECOND, "INVALID", False),  # verified since, and still bad
        (QUARANTINED_AT + SECOND, "VALID", True),
    ],
)
def test_release_needs_the_last_verification_valid_and_after_the_quarantine(
    verified_at: datetime | None, result: str | None, released: bool
) -> None:
    refusal = release_refusal(
        BackupStatus.QUARANTINED,
        quarantined_at=QUARANTINED_AT,
        last_verified_at=verified_at,
        last_result=result,
    )
    if released:
        assert refusal is None
        return
    assert isinstance(refusal, Conflict)
    assert refusal.details["reason"] == VERIFICATION_REQUIRED
    assert refusal.details["quarantined_at"] == "2026-12-01T12:00:00.000000Z"
    assert refusal.details["last_verification_result"] == result


@pytest.mark.parametrize("status", [s for s in BackupStatus if s is not BackupStatus.QUARANTINED])
def test_only_a_quarantined_backup_is_released(status: BackupStatus) -> None:
    refusal = release_refusal(
        status,
        quarantined_at=QUARANTINED_AT,
        last_verified_at=QUARANTINED_AT + SECOND,
        last_result="VALID",
    )
    assert isinstance(refusal, InvalidStateTransition)


def test_mismatches_name_the_facts_that_differ() -> None:
    recorded = ObjectFacts(10, 74, "a" * 128, "b" * 128)
    assert mismatched_fields(recorded, recorded) == ()
    assert mismatched_fields(recorded, ObjectFacts(10, 74, "c" * 128, "b" * 128)) == (
        "checksum_plaintext",
    )
    assert mismatched_fields(recorded, ObjectFacts(11, 75, "a" * 128, "d" * 128)) == (
        "plaintext_bytes",
        "ciphertext_bytes",
        "checksum_ciphertext",
    )


def test_the_stored_size_is_compared_only_where_it_is_recorded() -> None:
    uncompressed = ObjectFacts(10, 74, "a" * 128, "b" * 128)
    measured = ObjectFacts(10, 74, "a" * 128, "b" * 128, stored_bytes=10)
    assert mismatched_fields(uncompressed, measured) == ()
    compressed = ObjectFacts(10, 74, "a" * 128, "b" * 128, stored_bytes=6)
    assert mismatched_fields(compressed, measured) == ("stored_bytes",)
    assert mismatched_fields(compressed, ObjectFacts(10, 74, "a" * 128, "b" * 128, 6)) == ()


def test_the_default_selection_is_every_active_and_quarantined_backup() -> None:
    selection = VerifySelection()
    assert selection.statuses == (BackupStatus.ACTIVE, BackupStatus.QUARANTINED)
    assert selection.matches_source("anything")


def test_the_source_glob_is_case_sensitive_fnmatch() -> None:
    selection = VerifySelection(source_system="db-*")
    assert selection.matches_source("db-prod-1")
    assert not selection.matches_source("DB-prod-1")
    assert not selection.matches_source("web-1")
    assert VerifySelection(source_system="db-?").matches_source("db-1")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"statuses": ()}, "at least one status"),
        ({"statuses": (BackupStatus.DELETED,)}, "only ACTIVE and QUARANTINED"),
        ({"source_system": "db/*"}, "glob"),
        ({"source_system": ""}, "glob"),
        ({"created_from": QUARANTINED_AT, "created_to": QUARANTINED_AT}, "before created_to"),
    ],
)
def test_a_selection_that_cannot_be_verified_is_refused(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        VerifySelection(**arguments)  # type: ignore[arg-type]


def test_a_selection_survives_its_json_round_trip() -> None:
    selection = VerifySelection(
        statuses=(BackupStatus.QUARANTINED, BackupStatus.ACTIVE),
        source_system="db-*",
        classification=Classification.SECRET,
        created_from=QUARANTINED_AT - timedelta(days=7),
        created_to=QUARANTINED_AT,
    )
    assert selection.statuses == (BackupStatus.ACTIVE, BackupStatus.QUARANTINED)
    assert VerifySelection.from_json(selection.as_json()) == selection
