"""Declarative base with a constraint naming convention and portable column types."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every database, microsecond precision.

    PostgreSQL keeps ``timestamptz``. SQLite has no timestamp type, so the value is stored as
    fixed-width ISO text, which sorts chronologically and round-trips exactly — the audit
    chain hashes timestamps, so a lossy round trip would break it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def enum_column(enum: type[StrEnum], length: int) -> Enum:
    """A column holding one of ``enum``'s wire values as plain ``VARCHAR(length)``.

    Rows load as enum members, so services compare and branch on the domain's enums instead
    of re-wrapping strings; an unknown stored value fails to load instead of passing as text.
    """
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Sealed:
    """A row that grants or restricts something: its security-relevant fields carry a MAC
    under the key store's integrity key (:mod:`ssbg.domain.row_seals` names the fields;
    :mod:`ssbg.repositories.sealing` writes and checks it)."""

    seal: Mapped[str | None] = mapped_column(String(64))
