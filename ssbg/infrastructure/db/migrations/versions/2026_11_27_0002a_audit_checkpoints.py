"""Audit checkpoints: signed statements of the chain's hash every N entries.

Revision ID: 0002a
Revises: 0002
Create Date: 2026-11-27

Types are spelled out here rather than imported from the models so that this revision keeps
meaning what it meant when it was written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002a"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Timestamps: timestamptz on PostgreSQL, fixed-width ISO-8601 text on SQLite.
Timestamp = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("sequence_number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entry_hash", sa.String(128), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("checkpoint_interval", sa.Integer(), nullable=False),
        sa.Column("previous_checkpoint_sequence", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(256), nullable=False),
        sa.Column("signing_key_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("sequence_number", name=op.f("pk_audit_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
