"""Opaque list cursors: URL-safe base64 of a small JSON position, validated when read back.

A cursor carries no authority — visibility and filters are applied again on every page — so it
needs no signature; it only has to be unambiguous and refuse garbage with a 422.
"""

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.errors import ValidationFailed
from ssbg.domain.queries import BackupCursor


def encode_backup_cursor(cursor: BackupCursor) -> str:
    raw = json.dumps(
        {"t": format_timestamp(cursor.created_at), "id": str(cursor.backup_id)},
        separators=(",", ":"),
    ).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_backup_cursor(value: str) -> BackupCursor:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(raw)
        created_at = datetime.fromisoformat(data["t"].replace("Z", "+00:00"))
        backup_id = UUID(data["id"])
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise ValidationFailed(details={"cursor": "Not a cursor returned by this API."}) from None
    return BackupCursor(created_at=created_at, backup_id=backup_id)
