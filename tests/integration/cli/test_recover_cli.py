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
from ssbg.infrastructure.crypto.object_format import ObjectHeader
from ssbg.infrastructure.crypto.object_format_v2 import FRAME
from ssbg.services.container import Services
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.backups import get_record, upload
from tests.support.factories import create_api_key

MIB = 1024 * 1024
FIXTURES = Path(__file__).parents[2] / "fixtures" / "object_format_v1"
FIXTURES_V2 = Path(__file__).parents[2] / "fixtures" / "object_format_v2"
runner = CliRunner()


def _partials(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".partial")]


async def _stored_backup(
    client: httpx.AsyncClient,
    services: Services,
    tmp_path: Path,
    payload: bytes,
    compression: str | None = None,
) -> tuple[Path, Path]:
    operator = await create_api_key(services, Role.OPERATOR)
    response = await upload(client, operator, payload, compression=compression)
    assert response.status_code == 201, response.text
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


def test_recover_decrypts_the_published_v2_test_vector(tmp_path: Path) -> None:
    password = json.loads((FIXTURES / "vectors.json").read_text())["password"]
    directory = FIXTURES_V2 / "mixed"
    output = tmp_path / "plain"

    result = runner.invoke(
        app,
        [
            "recover",
            str(directory / "data.enc"),
            str(directory / "dek.wrapped"),
            "--private-key",
            str(FIXTURES / "P-001.private.p12"),  # the v2 vectors use the same test key
            "--output",
            str(output),
            "--json",
        ],
        env={"SSBG_KEY_PASSWORD": password},
    )

    assert result.exit_code == 0, result.output
    assert output.read_bytes() == (directory / "plaintext.bin").read_bytes()
    summary = json.loads(result.stdout)
    assert summary["backup_id"] == "0b5e5a1e-5eed-4c0d-9a7e-000000000002"
    assert (summary["format_version"], summary["compression"]) == (2, "zstd")


async def test_recover_decompresses_a_compressed_backup_offline(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    text = b"".join(b"INSERT INTO t VALUES (%d, 'row %d');\n" % (i, i % 7) for i in range(60_000))
    payload = text + os.urandom(MIB) + text[:1000]
    data, dek = await _stored_backup(client, services, tmp_path, payload, compression="zstd")
    assert data.stat().st_size < len(payload) * 2 // 3
    output = tmp_path / "restored.bin"

    key = services.key_store.private_key_path("P-001")
    arguments = [str(data), str(dek), "--private-key", str(key), "--output", str(output)]
    result = runner.invoke(
        app, ["recover", *arguments, "--json"], env={"SSBG_KEY_PASSWORD": TEST_KEY_PASSWORD}
    )

    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert output.read_bytes() == payload
    summary = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert (summary["format_version"], summary["compression"]) == (2, "zstd")
    assert summary["size"] == len(payload)


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "drop the last segment"])
async def test_recover_of_a_damaged_compressed_backup_writes_nothing(
    client: httpx.AsyncClient, services: Services, tmp_path: Path, damage: str
) -> None:
    text = b"".join(b"INSERT INTO t VALUES (%d);\n" % i for i in range(100_000))
    data, dek = await _stored_backup(client, services, tmp_path, text, compression="zstd")
    raw = data.read_bytes()
    if damage == "flip a byte":
        data.write_bytes(raw[:-100] + bytes([raw[-100] ^ 1]) + raw[-99:])
    elif damage == "truncate":
        data.write_bytes(raw[:-7])
    else:  # the last frame says how long the last segment is: find where it starts
        offset, starts = len(ObjectHeader.encode(ObjectHeader.parse(raw)[0])), []
        while offset < len(raw):
            starts.append(offset)
            offset += FRAME.size + FRAME.unpack_from(raw, offset)[1]
        data.write_bytes(raw[: starts[-1]])
    output = tmp_path / "restored.bin"

    result = _recover(services, data, dek, output)

    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    assert "integrity failure" in result.output  # type: ignore[attr-defined]
    assert not output.exists()
    assert _partials(tmp_path) == []


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
