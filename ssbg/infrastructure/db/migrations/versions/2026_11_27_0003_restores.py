"""Restore requests.

Revision ID: 0003
Revises: 0002b
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    op.create_table(
        "restore_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("backup_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=False),
        sa.Column("justification", sa.String(2000), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("source_ip", sa.String(45), nullable=True),
        sa.Column("mfa_verified", sa.Boolean(), nullable=False),
        sa.Column("denial_code", sa.String(40), nullable=True),
        sa.Column("denial_rule", sa.String(100), nullable=True),
        sa.Column("failure_reason", sa.String(40), nullable=True),
        sa.Column("approved_by", sa.Uuid(), nullable=True),
        sa.Column("approved_at", Timestamp, nullable=True),
        sa.Column("rejected_by", sa.Uuid(), nullable=True),
        sa.Column("rejected_at", Timestamp, nullable=True),
        sa.Column("rejection_reason", sa.String(1000), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("token_issued_at", Timestamp, nullable=True),
        sa.Column("token_expires_at", Timestamp, nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_expires_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("completed_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restore_requests")),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["api_keys.id"],
            name=op.f("fk_restore_requests_requested_by_api_keys"),
        ),
        sa.CheckConstraint(
            "status IN ('VERIFYING', 'PENDING_APPROVAL', 'COMPLETED', 'DENIED', 'REJECTED', "
            "'FAILED', 'EXPIRED')",
            name=op.f("ck_restore_requests_status"),
        ),
    )
    op.create_index(
        "ix_restore_requests_requested_by_created_at",
        "restore_requests",
        ["requested_by", "created_at"],
    )
    op.create_index("ix_restore_requests_created_at", "restore_requests", ["created_at"])
    op.create_index(
        "ix_restore_requests_status_lease", "restore_requests", ["status", "lease_expires_at"]
    )
    op.create_index("ix_restore_requests_backup_id", "restore_requests", ["backup_id"])


def downgrade() -> None:
    op.drop_index("ix_restore_requests_backup_id", table_name="restore_requests")
    op.drop_index("ix_restore_requests_status_lease", table_name="restore_requests")
    op.drop_index("ix_restore_requests_created_at", table_name="restore_requests")
    op.drop_index("ix_restore_requests_requested_by_created_at", table_name="restore_requests")
    op.drop_table("restore_requests")
