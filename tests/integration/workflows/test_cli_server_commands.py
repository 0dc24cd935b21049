"""``ssbg init`` / ``ssbg migrate`` / ``ssbg serve`` as an operator runs them."""

import json
import re
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest

from ssbg.infrastructure.crypto.key_store import PBKDF2_ITERATIONS
from tests.support.cli import run_ssbg
from tests.support.databases import create_empty_postgres, drop_postgres, postgres_base_url
from tests.support.file_modes import wrong_modes_under
from tests.support.key_files import password_costs_of_pkcs8, password_costs_of_sealed_key
from tests.support.processes import ServeProcess

PASSWORD = "cli-test-password-long-enough"


@pytest.fixture
async def empty_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no schema at all: ``ssbg init`` must migrate it from empty."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'ssbg.db'}"
        return
    base = postgres_base_url()
    assert base is not None
    url, name = await create_empty_postgres(base)
    try:
        yield url
    finally:
        await drop_postgres(base, name)


@pytest.fixture
def env(tmp_path: Path, empty_database: str) -> dict[str, str]:
    data = tmp_path / "data"
    data.mkdir()
    return {
        "SSBG_DATA_DIR": str(data),
        "SSBG_DATABASE_URL": empty_database,
        "SSBG_KEY_PASSWORD": PASSWORD,
        "SSBG_LOG_LEVEL": "WARNING",
    }


@pytest.mark.both_backends
def test_init_creates_keys_and_a_bootstrap_key_then_is_idempotent(env: dict[str, str]) -> None:
    first = run_ssbg("init", "--json", env=env)
    second = run_ssbg("init", "--json", env=env)

    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert set(created) == {"api_key", "key_id", "role", "totp_secret", "totp_uri"}
    assert re.fullmatch(r"ssbg_[0-9a-f]{32}", created["api_key"])
    assert created["role"] == "super_admin"
    assert pyotp.TOTP(created["totp_secret"]).now().isdigit()
    assert second.returncode == 0
    assert json.loads(second.stdout) == {"already_initialized": True}
    assert created["api_key"] not in second.stdout + second.stderr


def test_init_uses_the_configured_bootstrap_secrets(env: dict[str, str]) -> None:
    api_key = "ssbg_" + "ab" * 16
    totp = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

    result = run_ssbg(
        "init",
        "--json",
        env={**env, "SSBG_BOOTSTRAP_API_KEY": api_key, "SSBG_BOOTSTRAP_TOTP_SECRET": totp},
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["api_key"] == api_key
    assert json.loads(result.stdout)["totp_secret"] == totp


def test_key_files_are_private_and_every_password_guess_costs_600000_pbkdf2_rounds(
    env: dict[str, str],
) -> None:
    assert run_ssbg("init", "--json", env=env).returncode == 0
    keys = Path(env["SSBG_DATA_DIR"]) / "keys"

    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    written = sorted(path.name for path in keys.iterdir())
    assert written == [
        "P-001.private.pem",
        "P-001.public.pem",
        "audit-anchor.json",  # init appended: the audit anchor names its last entry
        "audit-anchor.json.lock",
        "audit-signing.private.pem",
        "audit-signing.public.pem",
        "integrity.adopted",
        "integrity.key",
        "mfa-seal.key",
    ]
    for name in written:
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600, name
    # Every password-protected file, parsed independently of the gateway's own reader.
    for name in ("P-001.private.pem", "audit-signing.private.pem"):
        assert password_costs_of_pkcs8(keys / name) == {
            "kdf": "PBKDF2",
            "prf": "hmacWithSHA256",
            "iterations": PBKDF2_ITERATIONS,
            "salt_bytes": 16,
            "cipher": "aes256-CBC",
            "other_checks": [],  # nothing else in the file: no MAC keyed more cheaply
        }
    for name in ("mfa-seal.key", "integrity.key"):
        assert password_costs_of_sealed_key(keys / name) == {
            "kdf": "PBKDF2-HMAC-SHA256",
            "iterations": PBKDF2_ITERATIONS,
        }
    assert PBKDF2_ITERATIONS >= 600_000
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    for name in ("P-001.private.pem", "audit-signing.private.pem"):
        read = subprocess.run(
            ["openssl", "pkey", "-in", str(keys / name), "-passin", f"pass:{PASSWORD}", "-noout"],
            capture_output=True,
            text=True,
        )
        wrong = subprocess.run(
            ["openssl", "pkey", "-in", str(keys / name), "-passin", "pass:guess", "-noout"],
            capture_output=True,
            text=True,
        )
        assert read.returncode == 0, read.stderr
        assert wrong.returncode != 0


@pytest.mark.both_backends
def test_migrate_reports_the_head_revision(env: dict[str, str]) -> None:
    result = run_ssbg("migrate", env=env)
    again = run_ssbg("migrate", env=env)

    assert result.returncode == 0, result.stderr
    assert again.returncode == 0
    assert "Schema at revision" in result.stdout


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_production_refuses_sqlite_with_exit_code_2(env: dict[str, str]) -> None:
    result = run_ssbg("init", env={**env, "SSBG_ENV": "production"})

    assert result.returncode == 2
    assert "PostgreSQL" in result.stderr


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_production_refuses_a_missing_key_password_with_exit_code_2(env: dict[str, str]) -> None:
    production = {k: v for k, v in env.items() if k != "SSBG_KEY_PASSWORD"}
    production |= {"SSBG_ENV": "production", "SSBG_DATABASE_URL": "postgresql+asyncpg://x/y"}

    result = run_ssbg("serve", env=production)

    assert result.returncode == 2
    assert "SSBG_KEY_PASSWORD must be set" in result.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_production_serve_refuses_an_uninitialised_gateway(env: dict[str, str]) -> None:
    result = run_ssbg("serve", "--port", "1", env={**env, "SSBG_ENV": "production"})

    assert result.returncode == 2
    assert "ssbg init" in result.stderr


def test_development_without_a_password_generates_one_beside_the_keys(
    env: dict[str, str],
) -> None:
    development = {k: v for k, v in env.items() if k != "SSBG_KEY_PASSWORD"}

    assert run_ssbg("init", "--json", env=development).returncode == 0

    generated = Path(env["SSBG_DATA_DIR"]) / "keys" / ".generated-key-password"
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    assert len(generated.read_text().strip()) >= 32


def test_database_wal_and_objects_are_private_wherever_they_are_configured(
    tmp_path: Path,
) -> None:
    # Three places, none of them existing yet: the gateway creates every folder on the way.
    data = tmp_path / "data-volume" / "data"
    database = tmp_path / "database-volume" / "db" / "ssbg.db"
    objects = tmp_path / "object-volume" / "objects"
    env = {
        "SSBG_DATA_DIR": str(data),
        "SSBG_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "SSBG_STORAGE_PATH": str(objects),
        "SSBG_KEY_PASSWORD": PASSWORD,
        "SSBG_LOG_LEVEL": "WARNING",
    }
    initialised = run_ssbg("init", "--json", env=env, cwd=tmp_path)
    assert initialised.returncode == 0, initialised.stderr
    api_key = json.loads(initialised.stdout)["api_key"]

    server = ServeProcess(env, tmp_path, workers=1).start()
    try:
        uploaded = httpx.post(
            f"{server.root_url}/api/v1/backups",
            params={"classification": "INTERNAL", "source_system": "db-1", "filename": "a.sql"},
            headers={"X-API-Key": api_key, "Content-Type": "application/octet-stream"},
            content=b"backup payload " * 1000,
            timeout=30,
        )
        assert uploaded.status_code == 201, uploaded.text
        # Walked while the gateway runs: the WAL and its index exist beside the database.
        assert database.with_name("ssbg.db-wal").exists()
        assert database.with_name("ssbg.db-shm").exists()
        assert any(objects.rglob("data.enc"))
        wrong: dict[str, str] = {}
        for volume in ("data-volume", "database-volume", "object-volume"):
            wrong |= wrong_modes_under(tmp_path / volume)
    finally:
        server.stop()

    assert wrong == {}
