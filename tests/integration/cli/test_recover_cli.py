"""``ssbg recover``: the two objects, the key file and its password are enough — and any
integrity failure means exit 1 and no output file."""

import json
import os
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ssbg.cli.main import app
from ssbg.domain.enums import Role
from ssbg.services.container import Services
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.backups import get_record, upload
from tests.support.factories import create_api_key

MIB = 1024 * 1024
FIXTURES = Path(__file__).parents[2] / "fixtures" / "object_format_v1"
runner = CliRunner()


def _partials(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".partial")]


async def _stored_backup(
    client: httpx.AsyncClient, services: Services, tmp_path: Path, payload: bytes
) -> tuple[Path, Path]:
    operator = await create_api_key(services, Role.OPERATOR)
    response = await upload(client, operator, payload)
    record = await get_record(services, response.json()["data"]["backup_id"])
    assert record is not None
    directory = tmp_path / f"copy-{record.id}"
    directory.mkdir()
    data, dek = directory / "data.enc", directory / "dek.wrapped"
    data.write_bytes(await services.object_store.read_bytes(record.storage_ref))
    dek.write_bytes(await services.object_store.read_bytes(record.wrapped_dek_ref))
    return data, dek


def _recover(
    services: Services, data: Path, dek: Path, output: Path, password: str = TEST_KEY_PASSWORD
) -> object:
    key = services.key_store.private_key_path("P-001")
    return runner.invoke(
        app,
        ["recover", str(data), str(dek), "--private-key", str(key), "--output", str(output)],
        env={"SSBG_KEY_PASSWORD": password},
    )


async def test_recover_decrypts_a_stored_backup_offline(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    payload = os.urandom(2 * MIB + 321)
    data, dek = await _stored_backup(client, services, tmp_path, payload)
    output = tmp_path / "restored.bin"

    result = _recover(services, data, dek, output)

    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert output.read_bytes() == payload
    assert oct(output.stat().st_mode & 0o777) == "0o600"
    assert _partials(tmp_path) == []


@pytest.mark.parametrize(
    "damage",
    ["flip a byte", "truncate a segment", "drop the last segment", "empty", "wrong wrapped key"],
)
async def test_recover_writes_nothing_on_an_integrity_failure(
    client: httpx.AsyncClient, services: Services, tmp_path: Path, damage: str
) -> None:
    data, dek = await _stored_backup(client, services, tmp_path, os.urandom(2 * MIB + 10))
    raw = data.read_bytes()
    if damage == "flip a byte":
        data.write_bytes(raw[:-100] + bytes([raw[-100] ^ 1]) + raw[-99:])
    elif damage == "truncate a segment":
        data.write_bytes(raw[:-7])
    elif damage == "drop the last segment":
        data.write_bytes(raw[: len(raw) - (10 + 16)])
    elif damage == "empty":
        data.write_bytes(b"")
    else:
        _other_data, other_dek = await _stored_backup(client, services, tmp_path, b"other")
        dek = other_dek
    output = tmp_path / "restored.bin"

    result = _recover(services, data, dek, output)

    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    assert "integrity failure" in result.output  # type: ignore[attr-defined]
    assert not output.exists()
    assert _partials(tmp_path) == []


async def test_recover_with_a_wrong_password_is_a_usage_error(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    data, dek = await _stored_backup(client, services, tmp_path, b"payload")

    result = _recover(services, data, dek, tmp_path / "out", password="not the password")

    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_recover_decrypts_the_published_test_vector(tmp_path: Path) -> None:
    password = json.loads((FIXTURES / "vectors.json").read_text())["password"]
    directory = FIXTURES / "three-segments"
    output = tmp_path / "plain"

    result = runner.invoke(
        app,
        [
            "recover",
            str(directory / "data.enc"),
            str(directory / "dek.wrapped"),
            "--private-key",
            str(FIXTURES / "P-001.private.p12"),
            "--output",
            str(output),
            "--json",
        ],
        env={"SSBG_KEY_PASSWORD": password},
    )

    assert result.exit_code == 0, result.output
    assert output.read_bytes() == (directory / "plaintext.bin").read_bytes()
    summary = json.loads(result.stdout)
    assert summary["backup_id"] == "0b5e5a1e-5eed-4c0d-9a7e-000000000001"
    assert summary["key_version"] == "P-001"


def test_recover_prompts_for_the_password_when_it_is_not_set(tmp_path: Path) -> None:
    password = json.loads((FIXTURES / "vectors.json").read_text())["password"]
    directory = FIXTURES / "one-byte"
    env = {k: v for k, v in os.environ.items() if k != "SSBG_KEY_PASSWORD"}

    result = runner.invoke(
        app,
        [
            "recover",
            str(directory / "data.enc"),
            str(directory / "dek.wrapped"),
            "--private-key",
            str(FIXTURES / "P-001.private.p12"),
            "--output",
            str(tmp_path / "plain"),
        ],
        input=f"{password}\n",
        env={**env, "SSBG_KEY_PASSWORD": ""},
    )

    assert result.exit_code == 0, result.output
    assert (tmp_path / "plain").read_bytes() == b"\x00"


async def test_recover_with_a_shredded_versions_missing_key_file_fails_cleanly(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    data, dek = await _stored_backup(client, services, tmp_path, b"gone for good")
    missing = tmp_path / "keys-after-shred" / "P-001.private.pem"  # unlinked by the shred

    result = runner.invoke(
        app,
        ["recover", str(data), str(dek), "--private-key", str(missing), "--output", "out"],
        env={"SSBG_KEY_PASSWORD": TEST_KEY_PASSWORD},
    )

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
