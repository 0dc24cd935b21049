"""``ssbg init`` / ``ssbg migrate`` / ``ssbg serve`` as an operator runs them."""

import json
import re
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest

from ssbg.infrastructure.crypto.key_store import PBKDF2_ITERATIONS
from tests.support.cli import run_ssbg
from tests.support.databases import create_empty_postgres, drop_postgres, postgres_base_url

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


def test_key_files_are_private_and_pkcs12_uses_pbes2_with_600000_iterations(
    env: dict[str, str],
) -> None:
    assert run_ssbg("init", "--json", env=env).returncode == 0
    keys = Path(env["SSBG_DATA_DIR"]) / "keys"

    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in (
        "P-001.private.p12",
        "P-001.public.pem",
        "audit-signing.private.p12",
        "mfa-seal.key",
    ):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600, name
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    for name in ("P-001.private.p12", "audit-signing.private.p12"):
        info = subprocess.run(
            [
                "openssl",
                "pkcs12",
                "-in",
                str(keys / name),
                "-info",
                "-noout",
                "-passin",
                f"pass:{PASSWORD}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        assert (
            f"PBES2, PBKDF2, AES-256-CBC, Iteration {PBKDF2_ITERATIONS}, PRF hmacWithSHA256" in info
        )
    assert PBKDF2_ITERATIONS >= 600_000


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
