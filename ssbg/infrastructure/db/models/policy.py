from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ssbg.domain.enums import PolicyEffect
from ssbg.infrastructure.db.base import Base, JSONType, Sealed, UTCDateTime, enum_column


class Policy(Sealed, Base):
    __tablename__ = "policies"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(2000))
    effect: Mapped[PolicyEffect] = mapped_column(enum_column(PolicyEffect, 20))
    priority: Mapped[int] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[UUID | None] = mapped_column(Uuid)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[UUID | None] = mapped_column(Uuid)
