"""Foundation: API keys, policies, key versions, audit chain, system state.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Types are spelled out here rather than imported from the models so that this revision keeps
meaning what it meant when it was written.
"""

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Timestamps: timestamptz on PostgreSQL, fixed-width ISO-8601 text on SQLite.
Timestamp = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

GENESIS_HASH = hashlib.sha512(b"SSBG-GENESIS").hexdigest()


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("department", sa.String(100), nullable=True),
        sa.Column("allowed_ips", sa.JSON(), nullable=False),
        sa.Column("expires_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.Column("revoked_by", sa.Uuid(), nullable=True),
        sa.Column("revoke_reason", sa.String(500), nullable=True),
        sa.Column("last_used_at", Timestamp, nullable=True),
        sa.Column("last_used_ip", sa.String(45), nullable=True),
        sa.Column("totp_secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.CheckConstraint(
            "role IN ('operator', 'auditor', 'admin', 'super_admin')", name=op.f("ck_api_keys_role")
        ),
    )
    op.create_table(
        "audit_log_entries",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", Timestamp, nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sa.String(20), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("result", sa.String(10), nullable=False),
        sa.Column("details", Json, nullable=False),
        sa.Column("source_ip", sa.String(45), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("incident_level", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(128), nullable=False),
        sa.Column("entry_hash", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_audit_log_entries")),
        sa.UniqueConstraint("sequence_number", name=op.f("uq_audit_log_entries_sequence_number")),
    )
    op.create_index(
        "ix_audit_log_entries_action_sequence", "audit_log_entries", ["action", "sequence_number"]
    )
    op.create_index(
        "ix_audit_log_entries_actor_sequence", "audit_log_entries", ["actor_id", "sequence_number"]
    )
    op.create_index("ix_audit_log_entries_occurred_at", "audit_log_entries", ["occurred_at"])
    op.create_index("ix_audit_log_entries_resource", "audit_log_entries", ["resource"])

    chain_head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=False),
        sa.Column("entry_hash", sa.String(128), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
    )
    op.create_table(
        "audit_signing_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_audit_signing_keys")),
    )
    op.create_table(
        "key_versions",
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("algorithm", sa.String(64), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("retired_at", Timestamp, nullable=True),
        sa.Column("destroyed_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_key_versions")),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'RETIRED', 'DESTROYED')", name=op.f("ck_key_versions_status")
        ),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("effect", sa.String(20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("rule", Json, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_policies_name")),
        sa.CheckConstraint("effect IN ('deny', 'require_mfa')", name=op.f("ck_policies_effect")),
    )
    system_state = op.create_table(
        "system_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("initialized_at", Timestamp, nullable=True),
        sa.Column("bootstrap_key_id", sa.Uuid(), nullable=True),
        sa.Column("incident_level", sa.Integer(), nullable=False),
        sa.Column("incident_reason", sa.String(1000), nullable=True),
        sa.Column("incident_changed_at", Timestamp, nullable=True),
        sa.Column("incident_changed_by", sa.Uuid(), nullable=True),
        sa.Column("last_alert_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_state")),
        sa.CheckConstraint("id = 1", name=op.f("ck_system_state_single_row")),
        sa.CheckConstraint(
            "incident_level BETWEEN 0 AND 3", name=op.f("ck_system_state_incident_level")
        ),
    )

    now = datetime.now(UTC)
    is_sqlite = op.get_bind().dialect.name == "sqlite"
    stamp: object = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if is_sqlite else now
    op.bulk_insert(
        chain_head,
        [{"id": 1, "sequence_number": 0, "entry_hash": GENESIS_HASH, "updated_at": stamp}],
    )
    op.bulk_insert(system_state, [{"id": 1, "incident_level": 0}])


def downgrade() -> None:
    op.drop_table("system_state")
    op.drop_table("policies")
    op.drop_table("key_versions")
    op.drop_table("audit_signing_keys")
    op.drop_table("audit_chain_head")
    op.drop_index("ix_audit_log_entries_resource", table_name="audit_log_entries")
    op.drop_index("ix_audit_log_entries_occurred_at", table_name="audit_log_entries")
    op.drop_index("ix_audit_log_entries_actor_sequence", table_name="audit_log_entries")
    op.drop_index("ix_audit_log_entries_action_sequence", table_name="audit_log_entries")
    op.drop_table("audit_log_entries")
    op.drop_table("api_keys")
