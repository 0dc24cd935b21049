from datetime import datetime
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.infrastructure.db.base import Base, Sealed, UTCDateTime


class ConsoleSession(Sealed, Base):
    """A web console session (SPEC §13.5; rules in ``ssbg.domain.console_sessions``).

    ``id`` is the keyed verifier of the SHA-256 of the cookie's secret, never the secret: the
    row grants access, so it is sealed like an API key's. Kept after it ends (sign-out sets
    ``revoked_at``) as a record of who was signed in when.
    """

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_key_id", "key_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[UUID] = mapped_column(Uuid, ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source_ip: Mapped[str | None] = mapped_column(String(45))
