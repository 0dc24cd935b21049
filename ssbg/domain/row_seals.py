"""Which fields of which rows are sealed, and the exact bytes a seal covers (SPEC §13.7).

Someone who can write the database but not read the key store must not be able to grant
themselves anything: every row that grants or restricts something carries a MAC (its *seal*)
over the fields that do so, under the key store's integrity key. A row whose seal does not
match is tampered with and is never acted on.

The message is canonical JSON of ``[table, [[field, value], …]]`` in the order below, with
UUIDs as lowercase hyphenated text, timestamps as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, bytes as
lowercase hex, enums as their wire value. The row's own key is among the fields, so a seal
cannot be moved to another row; the table name is too, so it cannot be moved to another table.

Fields added to a table after its rows were first sealed (``LATER_SEALED_FIELDS``) follow, in
their order, each only when its value differs from its default: a seal written before the field
existed stays valid, and any value the field is given is covered from then on (removing a legal
hold changes the message as surely as placing one).
"""

import json
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from ssbg.domain.audit_chain import format_timestamp

_quote = json.encoder.encode_basestring  # a JSON string literal, non-ASCII as itself

SEALED_FIELDS: dict[str, tuple[str, ...]] = {
    "api_keys": (
        "id",
        "key_hash",
        "role",
        "department",
        "allowed_ips",
        "expires_at",
        "revoked_at",
        "totp_secret_encrypted",
    ),
    "restore_requests": (
        "id",
        "backup_id",
        "requested_by",
        "status",
        "mfa_verified",
        "approved_by",
        "approved_at",
        "rejected_by",
        "token_hash",
        "token_expires_at",
        "created_at",  # the P5/P6 rate windows count by it
    ),
    "backup_metadata": (
        "id",
        "status",
        "classification",
        "source_system",
        "created_by",
        "key_version",
        "format_version",
        "segment_size",
        "storage_backend",
        "storage_ref",
        "wrapped_dek_ref",
        "original_size",
        "encrypted_size",
        "checksum_plaintext",
        "checksum_ciphertext",
    ),
    "policies": ("id", "name", "effect", "priority", "is_active", "rule"),
    "system_state": (
        "id",
        "initialized_at",
        "bootstrap_key_id",
        "incident_level",
        "incident_changed_at",
        "last_alert_at",
    ),
    "alerts": (
        "id",
        "rule_id",
        "severity",
        "status",
        "subject",
        "triggered_at",
        "incident_level_applied",
        "escalated_at",
        "acknowledged_by",
        "acknowledged_at",
        "investigating_by",
        "investigating_at",
        "resolved_by",
        "resolved_at",
    ),
    "key_versions": (
        "version",
        "status",
        "algorithm",
        "public_key_pem",
        "fingerprint",
        "retired_at",
        "destroyed_at",
        "shred_started_at",  # start-up completes a shred that began: only one the owner began
        "shred_reason",
        "shred_actor_id",
    ),
    "console_sessions": (
        "id",
        "key_id",
        "created_at",
        "last_seen_at",
        "expires_at",
        "revoked_at",
    ),
    "retention_rules": (
        "id",
        "name",
        "source_systems",
        "classifications",
        "keep_last",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "min_age_days",
        "is_active",
    ),
}

# (field, default) pairs sealed only when not at their default (migration 0008, SPEC §13.4).
LATER_SEALED_FIELDS: dict[str, tuple[tuple[str, Any], ...]] = {
    "backup_metadata": (
        ("compression", "none"),
        ("stored_size", None),
        ("last_verified_at", None),
        ("last_verification_result", None),
        ("legal_hold_at", None),
        ("legal_hold_by", None),
        ("legal_hold_reason", None),
    ),
}


def sealed_field_names(table: str) -> tuple[str, ...]:
    """Every field of ``table`` a seal may cover."""
    return SEALED_FIELDS[table] + tuple(name for name, _ in LATER_SEALED_FIELDS.get(table, ()))


def _canonical(value: Any) -> Any:
    """``value`` as the JSON value the message holds."""
    if value is None or (isinstance(value, bool | int | str) and not isinstance(value, Enum)):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    raise TypeError(f"{type(value).__name__} cannot be sealed")


def _json_text(value: Any) -> str:
    """The canonical JSON text of one field's value (the common types without the general
    encoder: every request checks the seals of the rows it reads)."""
    kind = type(value)
    if kind is str:
        return _quote(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is UUID:
        return f'"{value}"'
    if kind is datetime:
        return f'"{format_timestamp(value)}"'
    if isinstance(value, Enum):
        return _quote(value.value)
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_FIELD_PREFIXES = {
    table: tuple(f"[{_quote(name)}," for name in names) for table, names in SEALED_FIELDS.items()
}


def seal_message(table: str, values: Mapping[str, Any]) -> bytes:
    """The bytes a row's seal covers: its sealed fields, read from ``values`` — the canonical
    JSON (sorted keys, no whitespace, UTF-8) of ``[table, [[field, value], …]]``."""
    fields = ",".join(
        prefix + _json_text(values[name]) + "]"
        for prefix, name in zip(_FIELD_PREFIXES[table], SEALED_FIELDS[table], strict=True)
    )
    for name, default in LATER_SEALED_FIELDS.get(table, ()):
        value = values.get(name, default)
        if value is not default and value != default:
            fields += f",[{_quote(name)},{_json_text(value)}]"
    return f"[{_quote(table)},[{fields}]]".encode()


def tampered_resource(table: str, values: Mapping[str, Any]) -> str:
    """The audit resource of a row (SPEC §12) whose seal did not match."""
    prefix = {
        "api_keys": "api_key",
        "restore_requests": "restore",
        "backup_metadata": "backup",
        "policies": "policy",
        "key_versions": "key_version",
        "alerts": "alert",
        "retention_rules": "retention_rule",
    }.get(table)
    if table == "console_sessions":  # named by its key: the id is a verifier of the cookie
        key_id = values.get("key_id")
        return f"api_key:{key_id}" if key_id is not None else "system"
    key = values.get("version" if table == "key_versions" else "id")
    return f"{prefix}:{key}" if prefix and key is not None else "system"
