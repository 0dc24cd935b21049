"""Backups: metadata records and their lifecycle transitions.

Revision ID: 0002b
Revises: 0002a
Create Date: 2026-11-27

Types are spelled out here rather than imported from the models so that this revision keeps
meaning what it meant when it was written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002b"
down_revision: str | None = "0002a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Timestamps: timestamptz on PostgreSQL, fixed-width ISO-8601 text on SQLite.
Timestamp = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")

STATUSES = "('PROCESSING', 'ACTIVE', 'FAILED', 'QUARANTINED', 'DELETED', 'CRYPTO_SHREDDED')"
CLASSIFICATIONS = "('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'SECRET')"


def upgrade() -> None:
    op.create_table(
        "backup_metadata",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("classification", sa.String(20), nullable=False),
        sa.Column("source_system", sa.String(200), nullable=False),
        sa.Column("original_filename", sa.String(255), nullable=True),
        sa.Column("description", sa.String(2000), nullable=True),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("original_size", sa.BigInteger(), nullable=True),
        sa.Column("encrypted_size", sa.BigInteger(), nullable=True),
        sa.Column("checksum_plaintext", sa.String(128), nullable=True),
        sa.Column("checksum_ciphertext", sa.String(128), nullable=True),
        sa.Column("key_version", sa.String(16), nullable=False),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.Column("segment_size", sa.Integer(), nullable=False),
        sa.Column("storage_backend", sa.String(16), nullable=False),
        sa.Column("storage_ref", sa.String(300), nullable=False),
        sa.Column("wrapped_dek_ref", sa.String(300), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("completed_at", Timestamp, nullable=True),
        sa.Column("failure_reason", sa.String(40), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", Timestamp, nullable=True),
        sa.Column("cleanup_pending", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_metadata")),
        sa.ForeignKeyConstraint(
            ["key_version"],
            ["key_versions.version"],
            name=op.f("fk_backup_metadata_key_version_key_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["api_keys.id"], name=op.f("fk_backup_metadata_created_by_api_keys")
        ),
        sa.UniqueConstraint(
            "created_by", "idempotency_key", name=op.f("uq_backup_metadata_idempotency")
        ),
        sa.CheckConstraint(f"status IN {STATUSES}", name=op.f("ck_backup_metadata_status")),
        sa.CheckConstraint(
            f"classification IN {CLASSIFICATIONS}", name=op.f("ck_backup_metadata_classification")
        ),
    )
    op.create_index("ix_backup_metadata_created_at_id", "backup_metadata", ["created_at", "id"])
    op.create_index(
        "ix_backup_metadata_created_by_created_at_id",
        "backup_metadata",
        ["created_by", "created_at", "id"],
    )
    op.create_index(
        "ix_backup_metadata_status_lease", "backup_metadata", ["status", "lease_expires_at"]
    )
    op.create_index("ix_backup_metadata_key_version", "backup_metadata", ["key_version"])

    op.create_table(
        "backup_status_transitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("backup_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_status_transitions")),
        sa.ForeignKeyConstraint(
            ["backup_id"],
            ["backup_metadata.id"],
            name=op.f("fk_backup_status_transitions_backup_id_backup_metadata"),
        ),
        sa.UniqueConstraint(
            "backup_id", "sequence", name=op.f("uq_backup_status_transitions_sequence")
        ),
        sa.CheckConstraint(
            f"to_status IN {STATUSES}", name=op.f("ck_backup_status_transitions_to_status")
        ),
    )


def downgrade() -> None:
    op.drop_table("backup_status_transitions")
    op.drop_index("ix_backup_metadata_key_version", table_name="backup_metadata")
    op.drop_index("ix_backup_metadata_status_lease", table_name="backup_metadata")
    op.drop_index("ix_backup_metadata_created_by_created_at_id", table_name="backup_metadata")
    op.drop_index("ix_backup_metadata_created_at_id", table_name="backup_metadata")
    op.drop_table("backup_metadata")
