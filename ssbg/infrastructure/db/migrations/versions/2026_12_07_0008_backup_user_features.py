"""What backup users expect (SPEC §13.4): compression and stored size, verification at rest and
its jobs, legal holds, retention rules.

The new backup columns are sealed only when they leave their defaults
(``ssbg.domain.row_seals.LATER_SEALED_FIELDS``), so every seal written before this revision
stays valid and nothing has to be re-sealed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def _backup_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("compression", sa.String(16), nullable=False, server_default="none"),
        sa.Column("stored_size", sa.BigInteger(), nullable=True),
        sa.Column("last_verified_at", Timestamp, nullable=True),
        sa.Column("last_verification_result", sa.String(16), nullable=True),
        sa.Column("legal_hold_at", Timestamp, nullable=True),
        sa.Column("legal_hold_by", sa.Uuid(), nullable=True),
        sa.Column("legal_hold_reason", sa.String(2000), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("backup_metadata") as batch:
        for column in _backup_columns():
            batch.add_column(column)

    op.create_table(
        "retention_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("source_systems", Json, nullable=False),
        sa.Column("classifications", Json, nullable=False),
        sa.Column("keep_last", sa.Integer(), nullable=False),
        sa.Column("keep_daily", sa.Integer(), nullable=False),
        sa.Column("keep_weekly", sa.Integer(), nullable=False),
        sa.Column("keep_monthly", sa.Integer(), nullable=False),
        sa.Column("min_age_days", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("seal", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_retention_rules_name")),
    )

    op.create_table(
        "verify_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("selection", Json, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("verified", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cursor_created_at", Timestamp, nullable=True),
        sa.Column("cursor_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("lease_expires_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verify_jobs")),
    )


def downgrade() -> None:
    op.drop_table("verify_jobs")
    op.drop_table("retention_rules")
    with op.batch_alter_table("backup_metadata") as batch:
        for column in reversed(_backup_columns()):
            batch.drop_column(column.name)
