"""Opaque list cursors: URL-safe base64 of a small JSON position, validated when read back.

A cursor carries no authority — visibility and filters are applied again on every page — so it
needs no signature; it only has to be unambiguous and refuse garbage with a 422.
"""

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import Query
from pydantic import Field

from ssbg.api.schemas.common import storable_datetime
from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.errors import ValidationFailed
from ssbg.domain.queries import AlertCursor, BackupCursor, RestoreCursor

CURSOR_FORMAT = "ssbg-cursor"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,200}$"

CursorParam = Annotated[
    Annotated[
        str,
        Field(
            pattern=CURSOR_PATTERN,
            json_schema_extra={"format": CURSOR_FORMAT},
        ),
    ]
    | None,
    Query(
        description=(
            "The previous page's ``meta.next_cursor``, as returned (URL-safe base64 without "
            "padding, opaque). Any other value is a 422."
        ),
    ),
]
"""The ``cursor`` query parameter of a list: format ``ssbg-cursor`` names what a cursor is,
which a pattern cannot say (``tests/contract/hooks.py`` teaches schemathesis to make them)."""


def _encode(at: datetime, row_id: UUID) -> str:
    raw = json.dumps({"t": format_timestamp(at), "id": str(row_id)}, separators=(",", ":")).encode(
        "ascii"
    )
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(value: str) -> tuple[datetime, UUID]:
    """The (time, id) position of a list ordered newest first."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(raw)
        at = datetime.fromisoformat(data["t"].replace("Z", "+00:00"))
        row_id = UUID(data["id"])
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        storable_datetime(at)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise ValidationFailed(details={"cursor": "Not a cursor returned by this API."}) from None
    return at, row_id


def encode_backup_cursor(cursor: BackupCursor) -> str:
    return _encode(cursor.created_at, cursor.backup_id)


def decode_backup_cursor(value: str) -> BackupCursor:
    created_at, backup_id = _decode(value)
    return BackupCursor(created_at=created_at, backup_id=backup_id)


def encode_alert_cursor(cursor: AlertCursor) -> str:
    return _encode(cursor.triggered_at, cursor.alert_id)


def decode_alert_cursor(value: str) -> AlertCursor:
    triggered_at, alert_id = _decode(value)
    return AlertCursor(triggered_at=triggered_at, alert_id=alert_id)


def encode_restore_cursor(cursor: RestoreCursor) -> str:
    return _encode(cursor.created_at, cursor.restore_id)


def decode_restore_cursor(value: str) -> RestoreCursor:
    created_at, restore_id = _decode(value)
    return RestoreCursor(created_at=created_at, restore_id=restore_id)
