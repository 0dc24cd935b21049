from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.domain.enums import KeyVersionStatus
from ssbg.infrastructure.db.base import Base, JSONType, Sealed, UTCDateTime, enum_column


class KeyVersion(Sealed, Base):
    """A key-encryption key version (``P-001``...). Only the public key is in the database."""

    __tablename__ = "key_versions"

    version: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[KeyVersionStatus] = mapped_column(enum_column(KeyVersionStatus, 12))
    algorithm: Mapped[str] = mapped_column(String(64))
    public_key_pem: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A crypto-shred that began (CRYPTO_SHRED_START committed) and is completed by a retry or
    # at start-up if it was interrupted; its reason and actor go into the certificate.
    shred_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    shred_reason: Mapped[str | None] = mapped_column(String(1000))
    shred_actor_id: Mapped[UUID | None] = mapped_column(Uuid)
    # The signed destruction certificate (self-verifying: its signature is the audit key's).
    destruction_certificate: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
