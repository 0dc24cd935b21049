"""Alembic environment. Runs on a connection handed over by ``ssbg.infrastructure.db.migrate``."""

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ssbg.infrastructure.db import models  # noqa: F401  (registers every table)
from ssbg.infrastructure.db.base import Base

# Replicas starting together must not run the same migration twice: on PostgreSQL the
# upgrade runs under a transaction-scoped advisory lock (an arbitrary constant key).
MIGRATION_LOCK_KEY = 5_318_008_771


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `ssbg migrate`, which provides the connection")
run_migrations(connection)
