"""Alembic, driven from code: ``ssbg migrate``, first start and the test suite use this."""

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from ssbg.infrastructure.db.engine import create_engine

SCRIPT_LOCATION = "ssbg.infrastructure.db:migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["database_url"] = database_url
    return config


async def upgrade(database_url: str, revision: str = "head") -> None:
    await _run(database_url, lambda config: command.upgrade(config, revision))


async def downgrade(database_url: str, revision: str) -> None:
    await _run(database_url, lambda config: command.downgrade(config, revision))


async def current_revision(database_url: str) -> str | None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


async def _run(database_url: str, action: Callable[[Config], None]) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:

            def run(sync_connection: Connection) -> None:
                config = alembic_config(database_url)
                config.attributes["connection"] = sync_connection
                action(config)

            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()
