from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.infrastructure.db.base import Base, UTCDateTime


class OutboxNotification(Base):
    """A webhook notification (SPEC §13.2), written in the transaction of what it reports and
    delivered afterwards by a sender on any replica. ``claimed_until`` is the lease of the
    sender delivering it; ``delivered_at`` is set once the receiver answered 2xx."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_notification_outbox_pending", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)  # the exact JSON that is POSTed and signed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))
    # MAC of (event, body, created_at) under the key store's integrity key: checked before
    # a body is signed and sent (``ssbg.domain.webhooks.outbox_seal_message``).
    seal: Mapped[str | None] = mapped_column(String(64))
