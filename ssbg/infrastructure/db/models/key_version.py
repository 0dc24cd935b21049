from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.domain.enums import KeyVersionStatus
from ssbg.infrastructure.db.base import Base, Sealed, UTCDateTime, enum_column


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
