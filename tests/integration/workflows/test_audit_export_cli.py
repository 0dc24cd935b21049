"""``ssbg audit export`` is a client: it downloads the bundle from a running gateway over HTTP."""

import socket
from pathlib import Path

import pytest

from ssbg.domain.enums import Role
from ssbg.services.container import Services
from tests.support.audit_chain import append_until, run_cli
from tests.support.factories import create_api_key


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


async def test_export_downloads_a_bundle_that_verifies_offline(
    gateway_url: str, services: Services, tmp_path: Path
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    await append_until(services, 30)
    output = tmp_path / "evidence.jsonl"

    exported = await run_cli(
        ["audit", "export", "--output", str(output), "--json"],
        {"SSBG_URL": gateway_url, "SSBG_API_KEY": auditor.api_key},
    )
    verified = await run_cli(["audit", "verify", "--bundle", str(output), "--json"], {})

    assert exported.exit_code == 0
    summary = exported.json()
    assert summary["output"] == str(output)
    assert summary["entries"] == 31  # with the export's own AUDIT_EXPORT entry
    assert summary["bytes"] == output.stat().st_size
    assert verified.exit_code == 0
    assert verified.json()["entries_checked"] == 31


async def test_export_of_a_range(gateway_url: str, services: Services, tmp_path: Path) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    await append_until(services, 30)
    output = tmp_path / "range.jsonl"

    exported = await run_cli(
        ["audit", "export", "-o", str(output), "--from-sequence", "5", "--to-sequence", "9"],
        {"SSBG_URL": gateway_url, "SSBG_API_KEY": auditor.api_key},
    )
    verified = await run_cli(["audit", "verify", "--bundle", str(output), "--json"], {})

    assert exported.exit_code == 0
    assert (verified.exit_code, verified.json()["entries_checked"]) == (0, 5)


async def test_refused_export_leaves_no_file(
    gateway_url: str, services: Services, out_dir: Path
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    output = out_dir / "evidence.jsonl"

    exported = await run_cli(
        ["audit", "export", "--output", str(output), "--json"],
        {"SSBG_URL": gateway_url, "SSBG_API_KEY": operator.api_key},
    )

    assert exported.exit_code == 1
    assert exported.json()["error"]["code"] == "FORBIDDEN_ROLE"
    assert files_in(out_dir) == []


async def test_export_without_a_key_or_a_gateway_is_a_usage_error(out_dir: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    closed_port = listener.getsockname()[1]
    listener.close()
    output = out_dir / "evidence.jsonl"

    no_key = await run_cli(["audit", "export", "--output", str(output)], {"SSBG_API_KEY": ""})
    no_gateway = await run_cli(
        ["audit", "export", "--output", str(output), "--json"],
        {"SSBG_URL": f"http://127.0.0.1:{closed_port}", "SSBG_API_KEY": "ssbg_" + "0" * 32},
    )

    assert no_key.exit_code == 2
    assert no_gateway.exit_code == 2
    assert no_gateway.json()["error"]["code"] == "CONNECTION"
    assert files_in(out_dir) == []


async def test_export_into_a_missing_directory_is_a_usage_error(
    gateway_url: str, services: Services, out_dir: Path
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)

    exported = await run_cli(
        ["audit", "export", "--output", str(out_dir / "missing" / "evidence.jsonl"), "--json"],
        {"SSBG_URL": gateway_url, "SSBG_API_KEY": auditor.api_key},
    )

    assert exported.exit_code == 2
    assert exported.json()["error"]["code"] == "USAGE"
    assert files_in(out_dir) == []
