"""Key lifecycle (SPEC §13.1): a destruction in progress, and its signed certificate.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("key_versions", sa.Column("shred_started_at", Timestamp, nullable=True))
    op.add_column("key_versions", sa.Column("shred_reason", sa.String(1000), nullable=True))
    op.add_column("key_versions", sa.Column("shred_actor_id", sa.Uuid(), nullable=True))
    op.add_column("key_versions", sa.Column("destruction_certificate", Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_versions") as batch:
        for column in ("destruction_certificate", "shred_actor_id", "shred_reason"):
            batch.drop_column(column)
        batch.drop_column("shred_started_at")
