"""The client commands against a real gateway over HTTP (uvicorn on a loopback port):
``ssbg backup``, ``ssbg backups list|show`` and ``ssbg restore`` (with ``--collect``)."""

import hashlib
from pathlib import Path

import httpx
import pyotp
import pytest

from ssbg.domain.enums import Role
from ssbg.domain.incident import IncidentLevel
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.audit_chain import CliOutcome, run_cli
from tests.support.backups import get_record, random_payload
from tests.support.cli import env_for
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.restores import JUSTIFICATION, set_incident_level

MIB = 1024 * 1024


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "restored"
    directory.mkdir()
    return directory


def totp(key: IssuedApiKey, clock: FixedClock) -> str:
    assert key.totp_secret is not None
    return pyotp.TOTP(key.totp_secret).at(clock.now())


def names_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


async def cli_backup(
    url: str, key: IssuedApiKey, source: Path, classification: str = "INTERNAL"
) -> CliOutcome:
    return await run_cli(
        [
            "backup",
            str(source),
            "--classification",
            classification,
            "--source-system",
            "db-prod-01",
            "--description",
            "nightly dump",
            "--json",
        ],
        env_for(url, key),
    )


async def backed_up(
    url: str, key: IssuedApiKey, tmp_path: Path, payload: bytes, classification: str = "INTERNAL"
) -> str:
    source = tmp_path / "dump.sql"
    source.write_bytes(payload)
    outcome = await cli_backup(url, key, source, classification)
    assert outcome.exit_code == 0, outcome.stdout
    return str(outcome.json()["backup_id"])


def restore_args(backup_id: str, output: Path, *extra: str) -> list[str]:
    return ["restore", backup_id, "--justification", JUSTIFICATION, "-o", str(output), *extra]


async def test_backup_streams_a_file_and_list_and_show_find_it(
    gateway_url: str, services: Services, tmp_path: Path
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    payload = random_payload(MIB + 1)
    source = tmp_path / "dump.sql"
    source.write_bytes(payload)

    stored = await cli_backup(gateway_url, operator, source, "confidential")
    listed = await run_cli(["backups", "list", "--json"], env_for(gateway_url, operator))
    backup_id = stored.json()["backup_id"]
    shown = await run_cli(["backups", "show", backup_id, "--json"], env_for(gateway_url, operator))

    assert stored.exit_code == 0
    record = stored.json()
    assert record["status"] == "ACTIVE"
    assert record["classification"] == "CONFIDENTIAL"
    assert (record["original_filename"], record["source_system"]) == ("dump.sql", "db-prod-01")
    assert record["original_size"] == len(payload)
    assert record["checksum_plaintext"] == sha512(payload)
    persisted = await get_record(services, backup_id)
    assert persisted is not None
    assert persisted.checksum_plaintext == sha512(payload)
    assert listed.exit_code == 0
    assert [b["backup_id"] for b in listed.json()["data"]] == [backup_id]
    assert shown.exit_code == 0
    transitions = [(t["from_status"], t["to_status"]) for t in shown.json()["transitions"]]
    assert transitions == [(None, "PROCESSING"), ("PROCESSING", "ACTIVE")]


async def test_backup_refusals_and_usage_errors(
    gateway_url: str, services: Services, tmp_path: Path
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    operator = await create_api_key(services, Role.OPERATOR)
    source = tmp_path / "dump.sql"
    source.write_bytes(b"payload")
    empty = tmp_path / "empty.bin"
    empty.touch()

    refused = await cli_backup(gateway_url, auditor, source)
    no_file = await cli_backup(gateway_url, operator, tmp_path / "missing.sql")
    nothing = await cli_backup(gateway_url, operator, empty)
    unknown = await run_cli(["backups", "show", "not-a-uuid"], env_for(gateway_url, operator))

    assert (refused.exit_code, refused.json()["error"]["code"]) == (1, "FORBIDDEN_ROLE")
    assert (no_file.exit_code, no_file.json()["error"]["code"]) == (2, "USAGE")
    assert (nothing.exit_code, nothing.json()["error"]["code"]) == (2, "USAGE")
    assert unknown.exit_code == 2  # not a UUID


async def test_backup_compress_stores_less_and_restores_the_original_file(
    gateway_url: str, services: Services, tmp_path: Path, out_dir: Path
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    payload = b"".join(b"INSERT INTO t VALUES (%d, 'row');\n" % i for i in range(80_000))
    source = tmp_path / "dump.sql"
    source.write_bytes(payload)
    arguments = ["backup", str(source), "-c", "INTERNAL", "-s", "db-prod-01", "--compress"]

    stored = await run_cli([*arguments, "--level", "5", "--json"], env_for(gateway_url, operator))
    human = await run_cli(arguments, env_for(gateway_url, operator))
    no_compress = await run_cli(
        ["backup", str(source), "-c", "INTERNAL", "-s", "db", "--level", "5", "--json"],
        env_for(gateway_url, operator),
    )
    out_of_range = await run_cli([*arguments, "--level", "22"], env_for(gateway_url, operator))

    assert stored.exit_code == 0, stored.stdout
    record = stored.json()
    assert record["compression"] == "zstd"
    assert record["original_size"] == len(payload)
    assert record["stored_size"] < len(payload) // 4
    assert human.exit_code == 0, human.stdout
    assert "(zstd: " in human.stdout
    assert (no_compress.exit_code, no_compress.json()["error"]["code"]) == (2, "USAGE")
    assert out_of_range.exit_code == 2
    start = (await audit_entries(services.db, "BACKUP_START"))[0]
    assert start.details["compression_level"] == 5
    output = out_dir / "dump.sql"
    restored = await run_cli(
        restore_args(record["backup_id"], output, "--json"), env_for(gateway_url, admin)
    )
    assert restored.exit_code == 0, restored.stdout
    assert output.read_bytes() == payload


@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_restore_round_trip_writes_a_private_verified_file(
    gateway_url: str, services: Services, tmp_path: Path, out_dir: Path
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    payload = random_payload(2 * MIB + 1)
    backup_id = await backed_up(gateway_url, operator, tmp_path, payload)
    output = out_dir / "dump.sql"

    restored = await run_cli(restore_args(backup_id, output, "--json"), env_for(gateway_url, admin))

    assert restored.exit_code == 0, restored.stdout
    summary = restored.json()
    assert summary["backup_id"] == backup_id
    assert (summary["bytes"], summary["sha512"]) == (len(payload), sha512(payload))
    assert output.read_bytes() == payload
    assert output.stat().st_mode & 0o777 == 0o600
    assert names_in(out_dir) == ["dump.sql"]  # no partial file left
    downloads = await audit_entries(services.db, "RESTORE_DOWNLOAD")
    assert [(e.result, e.resource) for e in downloads] == [
        ("SUCCESS", f"restore:{summary['restore_id']}")
    ]


async def test_restore_asks_for_the_totp_code_when_the_policy_needs_mfa(
    gateway_url: str, services: Services, tmp_path: Path, out_dir: Path, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backed_up(gateway_url, admin, tmp_path, b"confidential", "CONFIDENTIAL")
    output = out_dir / "restored.bin"
    env = env_for(gateway_url, admin)

    no_answer = await run_cli(restore_args(backup_id, output, "--json"), env, stdin="")
    code = totp(admin, clock)
    prompted = await run_cli(restore_args(backup_id, output, "--json"), env, stdin=code)
    clock.advance(seconds=1)  # the same 30-second step: the code is spent
    replayed = await run_cli(
        restore_args(backup_id, out_dir / "again.bin", "--json"),
        env_for(gateway_url, admin, SSBG_MFA_TOKEN=totp(admin, clock)),
    )

    assert (no_answer.exit_code, no_answer.json()["error"]["code"]) == (1, "AUTH_MFA_REQUIRED")
    assert prompted.exit_code == 0, prompted.stdout
    assert output.read_bytes() == b"confidential"
    assert (replayed.exit_code, replayed.json()["error"]["code"]) == (1, "AUTH_MFA_INVALID")
    assert names_in(out_dir) == ["restored.bin"]


async def test_refused_restores_write_nothing(
    gateway_url: str, services: Services, tmp_path: Path, out_dir: Path
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backed_up(gateway_url, operator, tmp_path, b"payload")
    secret_id = await backed_up(gateway_url, operator, tmp_path, b"secret", "SECRET")
    output = out_dir / "restored.bin"

    by_operator = await run_cli(
        restore_args(backup_id, output, "--json"), env_for(gateway_url, operator)
    )
    secret = await run_cli(restore_args(secret_id, output, "--json"), env_for(gateway_url, admin))
    short = await run_cli(
        ["restore", backup_id, "-j", "too short", "-o", str(output), "--json"],
        env_for(gateway_url, admin),
    )

    assert (by_operator.exit_code, by_operator.json()["error"]["code"]) == (1, "FORBIDDEN_ROLE")
    assert (secret.exit_code, secret.json()["error"]["code"]) == (1, "POLICY_DENIED")
    assert secret.json()["error"]["details"]["rule"] == "P3"
    assert (short.exit_code, short.json()["error"]["code"]) == (1, "VALIDATION_ERROR")
    assert names_in(out_dir) == []


async def test_an_existing_output_is_kept_unless_forced(
    gateway_url: str, services: Services, tmp_path: Path, out_dir: Path
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backed_up(gateway_url, admin, tmp_path, b"fresh")
    output = out_dir / "restored.bin"
    output.write_bytes(b"precious")

    kept = await run_cli(restore_args(backup_id, output, "--json"), env_for(gateway_url, admin))
    requests_after_refusal = len(await audit_entries(services.db, "RESTORE_REQUEST"))
    forced = await run_cli(
        restore_args(backup_id, output, "--force", "--json"), env_for(gateway_url, admin)
    )

    assert (kept.exit_code, kept.json()["error"]["code"]) == (2, "USAGE")
    assert requests_after_refusal == 0  # refused before asking the gateway for anything
    assert forced.exit_code == 0
    assert output.read_bytes() == b"fresh"


async def test_tampered_backup_is_refused_and_leaves_no_file(
    gateway_url: str, services: Services, tmp_path: Path, out_dir: Path
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backed_up(gateway_url, admin, tmp_path, random_payload(3 * MIB))
    record = await get_record(services, backup_id)
    assert record is not None
    stored = bytearray(await services.object_store.read_bytes(record.storage_ref))
    stored[len(stored) // 2] ^= 0x01
    await services.object_store.put_bytes(record.storage_ref, bytes(stored))

    restored = await run_cli(
        restore_args(backup_id, out_dir / "restored.bin", "--json"), env_for(gateway_url, admin)
    )

    assert (restored.exit_code, restored.json()["error"]["code"]) == (1, "INTEGRITY_FAILURE")
    assert names_in(out_dir) == []


async def test_level_two_restore_waits_for_approval_then_is_collected(
    gateway_url: str,
    services: Services,
    bootstrap_key: IssuedApiKey,
    tmp_path: Path,
    out_dir: Path,
    clock: FixedClock,
) -> None:
    requester = await create_api_key(services, Role.ADMIN)
    approver = await create_api_key(services, Role.ADMIN)
    backup_id = await backed_up(gateway_url, requester, tmp_path, b"after the incident")
    await set_incident_level(services, bootstrap_key, IncidentLevel.QUARANTINE)
    output = out_dir / "restored.bin"
    env = env_for(gateway_url, requester, SSBG_MFA_TOKEN=totp(requester, clock))

    pending = await run_cli(restore_args(backup_id, output, "--json"), env)
    restore_id = pending.json()["restore_id"]
    clock.advance(seconds=30)
    too_early = await run_cli(
        ["restore", "--collect", restore_id, "-o", str(output), "--json"],
        env_for(gateway_url, requester, SSBG_MFA_TOKEN=totp(requester, clock)),
    )
    async with httpx.AsyncClient(base_url=f"{gateway_url}/api/v1") as http:
        approved = await http.post(
            f"/restores/{restore_id}/approve", headers=headers(approver, totp_at=clock.now())
        )
    clock.advance(seconds=30)
    collected = await run_cli(
        ["restore", "--collect", restore_id, "-o", str(output), "--json"],
        env_for(gateway_url, requester, SSBG_MFA_TOKEN=totp(requester, clock)),
    )

    assert (pending.exit_code, pending.json()["status"]) == (3, "PENDING_APPROVAL")
    assert (too_early.exit_code, too_early.json()["status"]) == (3, "PENDING_APPROVAL")
    assert approved.status_code == 200, approved.text
    assert collected.exit_code == 0, collected.stdout
    assert output.read_bytes() == b"after the incident"


async def test_restore_usage_errors_ask_nothing_of_the_gateway(
    gateway_url: str, services: Services, out_dir: Path
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    env = env_for(gateway_url, admin)
    some_id = "00000000-0000-4000-8000-000000000000"

    neither = await run_cli(["restore", "-o", str(out_dir / "x"), "--json"], env)
    both = await run_cli(restore_args(some_id, out_dir / "x", "--collect", some_id, "--json"), env)
    no_reason = await run_cli(["restore", some_id, "-o", str(out_dir / "x"), "--json"], env)
    no_folder = await run_cli(restore_args(some_id, out_dir / "missing" / "x", "--json"), env)
    no_key = await run_cli(restore_args(some_id, out_dir / "x", "--json"), {"SSBG_API_KEY": ""})

    for outcome in (neither, both, no_reason, no_folder, no_key):
        assert (outcome.exit_code, outcome.json()["error"]["code"]) == (2, "USAGE")
    assert await audit_entries(services.db, "RESTORE_REQUEST") == []
    assert names_in(out_dir) == []
