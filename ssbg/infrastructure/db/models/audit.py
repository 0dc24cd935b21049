from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.infrastructure.db.base import Base, JSONType, UTCDateTime


class AuditLogEntry(Base):
    __tablename__ = "audit_log_entries"
    __table_args__ = (
        Index("ix_audit_log_entries_action_sequence", "action", "sequence_number"),
        Index("ix_audit_log_entries_actor_sequence", "actor_id", "sequence_number"),
        Index("ix_audit_log_entries_occurred_at", "occurred_at"),
        Index("ix_audit_log_entries_resource", "resource"),
    )

    event_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    sequence_number: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[UUID | None] = mapped_column(Uuid)
    actor_role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    resource: Mapped[str] = mapped_column(String(200))
    result: Mapped[str] = mapped_column(String(10))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    source_ip: Mapped[str | None] = mapped_column(String(45))
    request_id: Mapped[str | None] = mapped_column(String(128))
    incident_level: Mapped[int] = mapped_column(Integer)
    prev_hash: Mapped[str] = mapped_column(String(128))
    entry_hash: Mapped[str] = mapped_column(String(128))


class AuditChainHead(Base):
    """The single row every append locks: the last sequence number and its hash."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence_number: Mapped[int] = mapped_column(BigInteger)
    entry_hash: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditSigningKey(Base):
    """Public half of an audit signing key (ECDSA P-384).

    The private half lives in the key store, never in the database.
    """

    __tablename__ = "audit_signing_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditCheckpoint(Base):
    """A signed statement "entry ``sequence_number`` has hash ``entry_hash``".

    Written in the transaction of the entry it names; ``signature`` (base64 DER, ECDSA
    P-384/SHA-384) covers the bytes of ``ssbg.domain.audit_checkpoint.checkpoint_signing_input``.
    """

    __tablename__ = "audit_checkpoints"

    sequence_number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entry_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checkpoint_interval: Mapped[int] = mapped_column(Integer)
    previous_checkpoint_sequence: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(String(256))
    signing_key_id: Mapped[str] = mapped_column(String(64))
