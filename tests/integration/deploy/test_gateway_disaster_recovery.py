"""docs/operations.md, "Restoring the gateway on a new host", tried end to end: a production
gateway on PostgreSQL stores a backup; its database is dumped (``pg_dump``) and its key store
copied; both are restored on the "new host" (a new database with ``pg_restore``, a new key
store folder) and a new gateway, given the same key password, restores the backup
byte-identical and validates the audit chain with its checkpoints."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import _admin_execute as admin_execute
from tests.support.databases import postgres_base_url, run_blocking, with_database
from tests.support.processes import ServeProcess

KEY_PASSWORD = "disaster-recovery-test-passphrase"  # a throw-away key store's password
pytestmark = pytest.mark.skipif(
    postgres_base_url() is None or shutil.which("pg_dump") is None,
    reason="needs SSBG_TEST_POSTGRES_URL and pg_dump / pg_restore",
)


def _libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    base = postgres_base_url()
    assert base is not None
    names = [f"ssbg_dr_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for name in names:
        run_blocking(admin_execute(base, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(base, names[0]), with_database(base, names[1])
    finally:
        for name in names:
            run_blocking(admin_execute(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _env(database_url: str, key_store: Path, objects: Path) -> dict[str, str]:
    return {
        "SSBG_ENV": "production",
        "SSBG_DATABASE_URL": database_url,
        "SSBG_KEYSTORE_DIR": str(key_store),
        "SSBG_KEY_PASSWORD": KEY_PASSWORD,
        "SSBG_STORAGE_BACKEND": "local",
        "SSBG_STORAGE_PATH": str(objects),
        "SSBG_DATA_DIR": str(key_store.parent / "data"),
        "SSBG_AUDIT_CHECKPOINT_INTERVAL": "5",
        "SSBG_LOG_LEVEL": "WARNING",
    }


def _init(env: dict[str, str], workdir: Path) -> str:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SSBG_")}
    result = subprocess.run(
        [sys.executable, "-m", "ssbg", "init", "--json"],
        env={**inherited, **env},
        cwd=workdir,
        capture_output=True,
        check=True,
    )
    return str(json.loads(result.stdout)["api_key"])


def _key(http: httpx.Client, super_admin: str, role: str) -> str:
    response = http.post(
        "/admin/api-keys",
        headers={"X-API-Key": super_admin},
        json={"role": role, "description": f"dr {role}"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["api_key"])


def test_a_gateway_restored_from_pg_dump_and_a_key_store_copy_restores_the_backups(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    old_database, new_database = databases
    objects = tmp_path / "objects"  # the bucket: it is not part of the gateway's own backup
    old_keys, new_keys = tmp_path / "old" / "keys", tmp_path / "new" / "keys"
    payload = os.urandom(300_000)

    env = _env(old_database, old_keys, objects)
    super_admin = _init(env, tmp_path)
    old = ServeProcess(env, tmp_path, workers=1).start()
    try:
        with httpx.Client(base_url=f"{old.root_url}/api/v1", timeout=60) as http:
            operator = _key(http, super_admin, "operator")
            stored = http.post(
                "/backups",
                params={"classification": "INTERNAL", "source_system": "dr", "filename": "a.bin"},
                headers={"X-API-Key": operator, "Content-Type": "application/octet-stream"},
                content=payload,
            )
            assert stored.status_code == 201, stored.text
            backup_id = stored.json()["data"]["backup_id"]
    finally:
        assert old.stop() is not None

    # The runbook's backup: pg_dump, a copy of the key store (modes kept).
    dump = tmp_path / "ssbg.dump"
    subprocess.run(
        ["pg_dump", "--format=custom", f"--file={dump}", _libpq(old_database)], check=True
    )
    shutil.copytree(old_keys, new_keys)

    # The runbook's restore on the new host: pg_restore into an empty database, the key store
    # copy, the same SSBG_KEY_PASSWORD; `ssbg init` finds it initialised already.
    subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", "-d", _libpq(new_database), str(dump)],
        check=True,
    )
    new_env = _env(new_database, new_keys, objects)
    new = ServeProcess(new_env, tmp_path, workers=1).start()
    try:
        with httpx.Client(base_url=f"{new.root_url}/api/v1", timeout=60) as http:
            admin, auditor = _key(http, super_admin, "admin"), _key(http, super_admin, "auditor")
            restore = http.post(
                "/restores",
                headers={"X-API-Key": admin},
                json={"backup_id": backup_id, "justification": "DR drill: gateway restored"},
            )
            assert restore.status_code == 201, restore.text
            data = restore.json()["data"]
            download = http.get(
                f"/restores/{data['restore_id']}/download",
                headers={"X-API-Key": admin, "X-Restore-Token": data["download"]["token"]},
            )
            assert download.status_code == 200
            assert hashlib.sha512(download.content).digest() == hashlib.sha512(payload).digest()
            validation = http.post("/audit/validate", headers={"X-API-Key": auditor}, json={})
            assert validation.status_code == 200, validation.text
            result = validation.json()["data"]
            assert result["valid"] is True, result
            assert result["checkpoints_verified"] >= 1
    finally:
        new.stop()
