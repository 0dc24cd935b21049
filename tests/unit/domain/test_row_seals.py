"""The bytes a row's seal covers (SPEC §13.7): canonical JSON, every sealed field, the table."""

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from ssbg.domain.enums import BackupStatus, Classification, Role
from ssbg.domain.row_seals import (
    SEALED_FIELDS,
    seal_message,
    sealed_field_names,
    tampered_resource,
)

KEY_ROW: dict[str, Any] = {
    "id": UUID("6002bdfd-3c52-4d69-8281-76ea7757190d"),
    "key_hash": "f" * 64,
    "role": Role.ADMIN,
    "department": "finance — ops",
    "allowed_ips": ["10.0.0.0/8"],
    "expires_at": datetime(2027, 1, 1, 12, 0, tzinfo=UTC),
    "revoked_at": None,
    "totp_secret_encrypted": b"\x01\x02",
}


def test_the_message_is_the_canonical_json_of_the_table_and_its_fields() -> None:
    expected = json.dumps(
        [
            "api_keys",
            [
                ["id", "6002bdfd-3c52-4d69-8281-76ea7757190d"],
                ["key_hash", "f" * 64],
                ["role", "admin"],
                ["department", "finance — ops"],
                ["allowed_ips", ["10.0.0.0/8"]],
                ["expires_at", "2027-01-01T12:00:00.000000Z"],
                ["revoked_at", None],
                ["totp_secret_encrypted", "0102"],
            ],
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    assert seal_message("api_keys", KEY_ROW) == expected


@pytest.mark.parametrize("field", SEALED_FIELDS["api_keys"])
def test_every_sealed_field_changes_the_message(field: str) -> None:
    changed = {**KEY_ROW, field: "something else"}
    assert seal_message("api_keys", changed) != seal_message("api_keys", KEY_ROW)


def test_a_row_of_another_table_never_has_the_same_message() -> None:
    shared = {name: None for names in SEALED_FIELDS.values() for name in names}
    messages = {seal_message(table, shared) for table in SEALED_FIELDS}
    assert len(messages) == len(SEALED_FIELDS)


def test_enums_and_nested_rules_are_written_as_their_wire_values() -> None:
    backup = dict.fromkeys(SEALED_FIELDS["backup_metadata"])
    backup |= {"status": BackupStatus.ACTIVE, "classification": Classification.SECRET}
    assert b'["status","ACTIVE"]' in seal_message("backup_metadata", backup)
    policy = dict.fromkeys(SEALED_FIELDS["policies"]) | {"rule": {"roles": ["admin"], "b": 1}}
    assert b'["rule",{"b":1,"roles":["admin"]}]' in seal_message("policies", policy)


def test_the_resource_named_for_a_tampered_row() -> None:
    assert tampered_resource("api_keys", KEY_ROW) == f"api_key:{KEY_ROW['id']}"
    assert tampered_resource("key_versions", {"version": "P-002"}) == "key_version:P-002"
    assert tampered_resource("system_state", {"id": 1}) == "system"


def test_fields_sealed_later_leave_old_seals_valid_and_cover_every_value_they_take() -> None:
    old = dict.fromkeys(SEALED_FIELDS["backup_metadata"]) | {"status": BackupStatus.ACTIVE}
    before = seal_message("backup_metadata", old)
    at_defaults = old | {"compression": "none", "stored_size": None, "legal_hold_at": None}
    assert seal_message("backup_metadata", at_defaults) == before  # a pre-0008 seal still holds

    held = at_defaults | {
        "legal_hold_at": datetime(2026, 12, 7, tzinfo=UTC),
        "legal_hold_reason": "litigation 42",
    }
    compressed = at_defaults | {"compression": "zstd", "stored_size": 10}
    messages = {before, seal_message("backup_metadata", held)}
    messages.add(seal_message("backup_metadata", compressed))
    assert len(messages) == 3
    assert seal_message("backup_metadata", held).endswith(
        b'["legal_hold_at","2026-12-07T00:00:00.000000Z"],["legal_hold_reason","litigation 42"]]]'
    )
    assert sealed_field_names("backup_metadata")[-1] == "legal_hold_reason"
