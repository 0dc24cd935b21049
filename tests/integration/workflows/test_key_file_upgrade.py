"""Key files of earlier versions (PKCS#12) are rewritten in the current format, audited, at
start-up and with ``ssbg keys upgrade``; nothing is lost and backups stay restorable."""

import shutil
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ssbg.api.app import create_app
from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.key_files import kdf_parameters
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.services.container import build_services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.audit_chain import cli_env, run_cli
from tests.support.factories import create_api_key
from tests.support.restores import backup_of, request_restore

NAMES = ["P-001", AUDIT_SIGNING_NAME]


def as_earlier_versions_left_it(source: FileKeyStore, directory: Path) -> FileKeyStore:
    """A copy of ``source`` whose private keys are PKCS#12 files, as earlier versions wrote."""
    shutil.copytree(source.directory, directory)
    store = FileKeyStore(directory, TEST_KEY_PASSWORD)
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(600_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(TEST_KEY_PASSWORD.encode())
    )
    for name in NAMES:
        key = store.load_private_key(name)
        store.legacy_private_key_path(name).write_bytes(
            pkcs12.serialize_key_and_certificates(name.encode(), key, None, None, encryption)
        )
        store.private_key_path(name).unlink()
    return FileKeyStore(directory, TEST_KEY_PASSWORD)


@pytest.fixture
async def legacy_settings(
    settings: Settings, shared_key_store: FileKeyStore, tmp_path: Path
) -> Settings:
    """An initialised gateway whose key store an earlier version wrote."""
    store = as_earlier_versions_left_it(shared_key_store, tmp_path / "legacy-keys")
    upgraded = settings.model_copy(update={"keystore_dir": store.directory})
    services = build_services(upgraded, key_store=store)
    try:
        await services.bootstrap.initialize()
    finally:
        await services.close()
    return upgraded


async def test_start_up_rewrites_each_key_file_once_audited_and_backups_stay_restorable(
    legacy_settings: Settings,
) -> None:
    app = create_app(legacy_settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        admin = await create_api_key(services, Role.ADMIN)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as client:
            backup_id = await backup_of(client, admin, b"written after the upgrade")
            restored = await request_restore(client, admin, backup_id)
        upgrades = await audit_entries(services.db, "KEY_FILE_UPGRADE")
        await assert_chain_valid(services.db)
    async with app.router.lifespan_context(app):  # a second start has nothing left to do
        again = await audit_entries(app.state.services.db, "KEY_FILE_UPGRADE")

    assert restored.status_code == 201, restored.text
    directory = legacy_settings.resolved_keystore_dir
    assert sorted(path.name for path in directory.glob("*.private.*")) == [
        "P-001.private.pem",
        "audit-signing.private.pem",
    ]
    for name in NAMES:
        assert (
            kdf_parameters((directory / f"{name}.private.pem").read_bytes()).iterations == 600_000
        )
    assert sorted((e.details["key"], e.details["via"], e.actor_id) for e in upgrades) == [
        ("P-001", "start-up", None),
        (AUDIT_SIGNING_NAME, "start-up", None),
    ]
    assert {e.resource for e in upgrades} == {"key_version:P-001", "system"}
    assert len(again) == 2


async def test_keys_upgrade_command_rewrites_the_files_then_has_nothing_to_do(
    legacy_settings: Settings,
) -> None:
    first = await run_cli(["keys", "upgrade", "--json"], cli_env(legacy_settings))
    second = await run_cli(["keys", "upgrade", "--json"], cli_env(legacy_settings))

    assert first.exit_code == 0, first.stdout
    assert sorted(first.json()["upgraded"]) == sorted(NAMES)
    assert second.json() == {"upgraded": []}
    services = build_services(legacy_settings)
    try:
        upgrades = await audit_entries(services.db, "KEY_FILE_UPGRADE")
    finally:
        await services.close()
    assert [e.details["via"] for e in upgrades] == ["cli", "cli"]
