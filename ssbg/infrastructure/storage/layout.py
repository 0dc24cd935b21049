"""Where a backup's objects live in any store (SPEC §6)."""

from uuid import UUID

DATA_OBJECT = "data.enc"
WRAPPED_DEK_OBJECT = "dek.wrapped"


def backup_prefix(backup_id: UUID) -> str:
    return f"backups/{backup_id}/"


def data_key(backup_id: UUID) -> str:
    return f"{backup_prefix(backup_id)}{DATA_OBJECT}"


def wrapped_dek_key(backup_id: UUID) -> str:
    return f"{backup_prefix(backup_id)}{WRAPPED_DEK_OBJECT}"


def rewrapped_dek_key(backup_id: UUID, key_version: str) -> str:
    """The DEK wrapped again to ``key_version`` by a rewrap (SPEC §13.1): a new object beside
    the old one, so the switch is atomic (write it, switch the metadata, remove the old)."""
    return f"{backup_prefix(backup_id)}dek.{key_version}.wrapped"
