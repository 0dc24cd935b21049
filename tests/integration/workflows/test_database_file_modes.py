"""The SQLite database, its WAL and their folders are private wherever the URL points."""

import shutil
import stat
from pathlib import Path

from sqlalchemy import text

from ssbg.infrastructure.db.engine import create_engine
from ssbg.infrastructure.db.migrate import upgrade
from tests.support.databases import SqliteTemplate
from tests.support.file_modes import usual_umask, wrong_modes_under


async def test_database_wal_and_shm_are_0600_in_folders_0700_whatever_the_umask(
    tmp_path: Path,
) -> None:
    database = tmp_path / "volume" / "nested" / "ssbg.db"
    url = f"sqlite+aiosqlite:///{database}"
    with usual_umask():
        await upgrade(url)
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE system_state SET id = id"))
            # Walked while a connection is open: the WAL and its index exist.
            assert database.with_name("ssbg.db-wal").exists()
            assert database.with_name("ssbg.db-shm").exists()
            wrong = wrong_modes_under(tmp_path / "volume")
        finally:
            await engine.dispose()

    assert wrong == {}


async def test_a_database_left_readable_by_others_is_made_private(
    tmp_path: Path, sqlite_template: SqliteTemplate
) -> None:
    database = tmp_path / "ssbg.db"
    shutil.copyfile(sqlite_template.path, database)
    database.chmod(0o644)

    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    await engine.dispose()

    assert stat.S_IMODE(database.stat().st_mode) == 0o600
