from datetime import datetime
from uuid import UUID

from sqlalchemy import JSON, BigInteger, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.domain.enums import Role
from ssbg.infrastructure.db.base import Base, Sealed, UTCDateTime, enum_column


class ApiKey(Sealed, Base):
    """An API key. The raw key is never stored: ``key_hash`` is SHA-256 of it.

    A fast hash is right here because keys carry 128 random bits; there is nothing to brute
    force. The TOTP secret is stored AES-256-GCM encrypted under a key in the key store.
    """

    __tablename__ = "api_keys"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(enum_column(Role, 20))
    description: Mapped[str] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(100))
    allowed_ips: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[UUID | None] = mapped_column(Uuid)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[UUID | None] = mapped_column(Uuid)
    revoke_reason: Mapped[str | None] = mapped_column(String(500))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_ip: Mapped[str | None] = mapped_column(String(45))
    totp_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
