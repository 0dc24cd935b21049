"""Row seals: a MAC column on every row that grants or restricts something.

The seals themselves (and the keyed verifiers that replace bare SHA-256 of API keys and
restore tokens) need the integrity key from the key store, which a migration does not have:
the gateway seals the rows of an upgraded database once, at start-up (see
``ssbg.services.integrity_service``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED_TABLES = (
    "api_keys",
    "restore_requests",
    "backup_metadata",
    "policies",
    "system_state",
    "key_versions",
)


def upgrade() -> None:
    for table in SEALED_TABLES:
        op.add_column(table, sa.Column("seal", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in SEALED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("seal")
