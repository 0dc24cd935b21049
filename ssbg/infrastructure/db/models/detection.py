"""What the detection rules and auth-failure throttling count, shared by every replica."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.infrastructure.db.base import Base, UTCDateTime


class AuthFailureCount(Base):
    """Failed authentications from one source address in one minute (throttling, SPEC §13.2)."""

    __tablename__ = "auth_failure_counts"

    source_ip: Mapped[str] = mapped_column(String(45), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)


class AuthThrottleWindow(Base):
    """A source address throttled in one window: its single ``AUTH_THROTTLED`` entry is
    written by whichever request inserts this row."""

    __tablename__ = "auth_throttle_windows"

    source_ip: Mapped[str] = mapped_column(String(45), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    throttled_at: Mapped[datetime] = mapped_column(UTCDateTime)


class KeySourceAddress(Base):
    """An address an API key asked for a restore from (rule M4)."""

    __tablename__ = "key_source_addresses"

    api_key_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    source_ip: Mapped[str] = mapped_column(String(45), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    restores: Mapped[int] = mapped_column(Integer)


class RestoreVolumeDay(Base):
    """Bytes restored (verified and released) on one UTC day (rule M3)."""

    __tablename__ = "restore_volume_daily"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    restored_bytes: Mapped[int] = mapped_column(BigInteger)
    restores: Mapped[int] = mapped_column(Integer)
