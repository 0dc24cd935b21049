"""Incident level history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    op.create_table(
        "incident_level_changes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("from_level", sa.Integer(), nullable=False),
        sa.Column("to_level", sa.Integer(), nullable=False),
        sa.Column("stored_from_level", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("changed_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_level_changes")),
        sa.CheckConstraint(
            "to_level BETWEEN 0 AND 3", name=op.f("ck_incident_level_changes_to_level")
        ),
    )
    op.create_index(
        op.f("ix_incident_level_changes_changed_at"), "incident_level_changes", ["changed_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_incident_level_changes_changed_at"), table_name="incident_level_changes")
    op.drop_table("incident_level_changes")
