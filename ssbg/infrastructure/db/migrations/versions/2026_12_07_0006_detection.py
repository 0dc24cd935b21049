"""Detection and response (SPEC §13.2): alerts, the webhook outbox, and what the rules and
auth-failure throttling count.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
OPEN_ALERT = sa.text("status <> 'RESOLVED'")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.String(4), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("triggered_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("context", Json, nullable=False),
        sa.Column("incident_level_applied", sa.Integer(), nullable=True),
        sa.Column("escalated_at", Timestamp, nullable=True),
        sa.Column("acknowledged_by", sa.Uuid(), nullable=True),
        sa.Column("acknowledged_at", Timestamp, nullable=True),
        sa.Column("investigating_by", sa.Uuid(), nullable=True),
        sa.Column("investigating_at", Timestamp, nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column("resolved_at", Timestamp, nullable=True),
        sa.Column("note", sa.String(2000), nullable=True),
        sa.Column("seal", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(
        "uq_alerts_open_rule_subject",
        "alerts",
        ["rule_id", "subject"],
        unique=True,
        postgresql_where=OPEN_ALERT,
        sqlite_where=OPEN_ALERT,
    )
    op.create_index("ix_alerts_status_triggered_at", "alerts", ["status", "triggered_at"])
    op.create_index("ix_alerts_triggered_at", "alerts", ["triggered_at"])

    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=False),
        sa.Column("claimed_until", Timestamp, nullable=True),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("delivered_at", Timestamp, nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_outbox")),
    )
    op.create_index(
        "ix_notification_outbox_pending", "notification_outbox", ["delivered_at", "next_attempt_at"]
    )

    op.create_table(
        "auth_failure_counts",
        sa.Column("source_ip", sa.String(45), nullable=False),
        sa.Column("minute", Timestamp, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source_ip", "minute", name=op.f("pk_auth_failure_counts")),
    )
    op.create_table(
        "auth_throttle_windows",
        sa.Column("source_ip", sa.String(45), nullable=False),
        sa.Column("window_start", Timestamp, nullable=False),
        sa.Column("throttled_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("source_ip", "window_start", name=op.f("pk_auth_throttle_windows")),
    )
    op.create_table(
        "key_source_addresses",
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("source_ip", sa.String(45), nullable=False),
        sa.Column("first_seen_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("restores", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("api_key_id", "source_ip", name=op.f("pk_key_source_addresses")),
    )
    op.create_table(
        "restore_volume_daily",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("restored_bytes", sa.BigInteger(), nullable=False),
        sa.Column("restores", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_restore_volume_daily")),
    )
    op.add_column("incident_level_changes", sa.Column("alert_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incident_level_changes") as batch:
        batch.drop_column("alert_id")
    for table in (
        "restore_volume_daily",
        "key_source_addresses",
        "auth_throttle_windows",
        "auth_failure_counts",
        "notification_outbox",
        "alerts",
    ):
        op.drop_table(table)
