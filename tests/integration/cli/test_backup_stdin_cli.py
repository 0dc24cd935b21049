"""``ssbg backup -`` against a real gateway over HTTP: standard input (a real pipe between two
processes, and the in-process runner's stdin) and a producer command after ``--``, streamed with
chunked transfer encoding."""

import asyncio
import hashlib
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, entries_for
from tests.support.audit_chain import CliOutcome, run_cli
from tests.support.backups import (
    count_records,
    decrypt_stored,
    get_record,
    objects_left,
    only_record,
    upload,
)
from tests.support.cli import PROJECT_ROOT, child_env, ssbg_command
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.processes import wait_until
from tests.support.restores import JUSTIFICATION

MIB = 1024 * 1024
PIPED_SIZE = 3 * MIB + 17  # more than one client chunk, not a multiple of one

# Writes SIZE pseudo-random bytes (seeded, so the test knows them) to standard output.
WRITER = (
    "import random, sys\n"
    "size = int(sys.argv[1])\n"
    "sys.stdout.buffer.write(random.Random(7).randbytes(size))\n"
)
# Writes 2 MiB, waits for a line on its standard input (ssbg's, inherited), exits 3.
FAILING_PRODUCER = (
    "import sys\n"
    "sys.stdout.buffer.write(b'x' * (2 * 1024 * 1024))\n"
    "sys.stdout.buffer.flush()\n"
    "sys.stdin.readline()\n"
    "sys.exit(3)\n"
)


def env_for(url: str, key: IssuedApiKey, **extra: str) -> dict[str, str]:
    return {"SSBG_URL": url, "SSBG_API_KEY": key.api_key, "SSBG_MFA_TOKEN": "", **extra}


def piped_bytes(size: int) -> bytes:
    return random.Random(7).randbytes(size)


def stdin_args(*extra: str, filename: str = "db.sql") -> list[str]:
    return ["backup", "-", "--filename", filename, "-c", "INTERNAL", "-s", "db-prod-01", *extra]


def pipe_into_ssbg(size: int, arguments: list[str], env: dict[str, str]) -> CliOutcome:
    """``python -c WRITER size | ssbg ARGUMENTS``: two processes joined by a real pipe."""
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(size)], stdout=subprocess.PIPE
    ) as writer:
        assert writer.stdout is not None
        consumer = subprocess.run(
            ssbg_command(*arguments),
            stdin=writer.stdout,
            env=child_env(env),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        writer.stdout.close()
        assert writer.wait(timeout=30) == 0
    return CliOutcome(consumer.returncode, consumer.stdout, consumer.stderr)


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


@pytest.mark.both_backends
@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_a_real_pipe_is_stored_and_restores_byte_identical(
    gateway_url: str, services: Services, tmp_path: Path
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    expected = piped_bytes(PIPED_SIZE)

    stored = await asyncio.to_thread(
        pipe_into_ssbg, PIPED_SIZE, stdin_args("--json"), env_for(gateway_url, operator)
    )

    assert stored.exit_code == 0, stored.stderr
    record = stored.json()
    assert record["status"] == "ACTIVE"
    assert (record["original_filename"], record["source_system"]) == ("db.sql", "db-prod-01")
    assert record["content_type"] == "application/octet-stream"
    assert record["original_size"] == PIPED_SIZE
    assert record["checksum_plaintext"] == sha512(expected)
    output = tmp_path / "restored.sql"
    restored = await run_cli(
        ["restore", record["backup_id"], "-j", JUSTIFICATION, "-o", str(output), "--json"],
        env_for(gateway_url, admin),
    )
    assert restored.exit_code == 0, restored.stdout
    assert restored.json()["sha512"] == sha512(expected)
    assert output.read_bytes() == expected


@pytest.mark.both_backends
async def test_compress_works_with_standard_input(gateway_url: str, services: Services) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    dump = "".join(f"{i}\tcustomer-{i % 97}\t2026-11-27\n" for i in range(60_000))

    stored = await run_cli(
        stdin_args("--compress", "--level", "5", "--json"),
        env_for(gateway_url, operator),
        stdin=dump,
    )
    human = await run_cli(
        stdin_args("--compress", filename="again.sql"), env_for(gateway_url, operator), stdin=dump
    )

    assert stored.exit_code == 0, stored.stdout
    record = stored.json()
    assert (record["compression"], record["original_size"]) == ("zstd", len(dump))
    assert record["stored_size"] < len(dump) // 4
    assert record["checksum_plaintext"] == sha512(dump.encode())
    persisted = await get_record(services, record["backup_id"])
    assert persisted is not None
    assert await decrypt_stored(services, persisted) == dump.encode()
    assert human.exit_code == 0, human.stdout
    assert "(zstd: " in human.stdout


async def test_standard_input_needs_a_filename_and_some_data(
    gateway_url: str, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    env = env_for(gateway_url, operator)

    unnamed = await run_cli(["backup", "-", "-c", "INTERNAL", "-s", "db", "--json"], env, stdin="x")
    empty = await run_cli(stdin_args("--json"), env, stdin="")
    command_with_file = await run_cli(
        ["backup", "dump.sql", "-c", "INTERNAL", "-s", "db", "--json", "--", "true"], env
    )
    empty_producer = await run_cli(stdin_args("--json", "--", "true"), env)

    assert (unnamed.exit_code, unnamed.json()["error"]["code"]) == (2, "USAGE")
    assert "--filename" in unnamed.json()["error"]["message"]
    assert (empty.exit_code, empty.json()["error"]["code"]) == (2, "USAGE")
    assert "empty" in empty.json()["error"]["message"]
    assert (command_with_file.exit_code, command_with_file.json()["error"]["code"]) == (2, "USAGE")
    assert (empty_producer.exit_code, empty_producer.json()["error"]["code"]) == (2, "USAGE")
    assert await count_records(services) == 0


async def test_the_gateway_refuses_an_empty_chunked_body_and_keeps_no_record(
    gateway_url: str, services: Services
) -> None:
    """What ``ssbg backup -`` never sends (it refuses an empty stream first), the gateway
    refuses too: no backup is recorded, let alone stored as a success."""
    operator = await create_api_key(services, Role.OPERATOR)

    async def nothing() -> AsyncIterator[bytes]:
        for chunk in ():
            yield chunk

    async with httpx.AsyncClient(base_url=f"{gateway_url}/api/v1") as client:
        response = await upload(client, operator, nothing(), mode="raw")

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"file": "The payload is empty."}
    assert await count_records(services) == 0


@pytest.mark.both_backends
@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_a_failing_producer_cuts_the_upload_and_the_backup_is_failed(
    gateway_url: str, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    arguments = stdin_args("--json", "--", sys.executable, "-c", FAILING_PRODUCER)
    ssbg = await asyncio.create_subprocess_exec(
        *ssbg_command(*arguments),
        stdin=subprocess.PIPE,  # the producer's standard input: it exits on a line
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(env_for(gateway_url, operator)),
        cwd=PROJECT_ROOT,
    )

    async def processing() -> bool:
        return await count_records(services) == 1 and (
            (await only_record(services)).status == "PROCESSING"
        )

    try:
        await wait_until(processing)  # the upload is under way: the gateway has a record
        stdout, stderr = await asyncio.wait_for(ssbg.communicate(b"go\n"), 60)
    finally:
        if ssbg.returncode is None:
            ssbg.kill()
            await ssbg.wait()

    assert ssbg.returncode == 1, stderr
    error = CliOutcome(1, stdout.decode()).json()["error"]
    assert error["code"] == "PRODUCER_FAILED"
    assert "exited with status 3" in error["message"]
    assert error["details"]["exit_status"] == 3
    assert error["details"]["bytes_sent"] == 2 * MIB

    async def failed() -> bool:
        return (await only_record(services)).status == "FAILED"

    await wait_until(failed)
    record = await only_record(services)
    assert record.failure_reason == "CLIENT_DISCONNECTED"
    entries = await entries_for(services.db, f"backup:{record.id}")
    assert entries[-1].action == "BACKUP_FAILED"

    async def cleaned() -> bool:
        current = await get_record(services, record.id)
        return current is not None and not current.cleanup_pending

    await wait_until(cleaned)
    assert await objects_left(services, record.id) == []
    await assert_chain_valid(services.db)


async def test_a_producer_that_succeeds_is_stored_with_its_output(
    gateway_url: str, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    producer = [sys.executable, "-c", WRITER, str(PIPED_SIZE)]

    stored = await run_cli(stdin_args("--json", "--", *producer), env_for(gateway_url, operator))
    missing = await run_cli(
        stdin_args("--json", "--", "/nonexistent/pg_dump"), env_for(gateway_url, operator)
    )

    assert stored.exit_code == 0, stored.stdout
    assert stored.json()["checksum_plaintext"] == sha512(piped_bytes(PIPED_SIZE))
    assert (missing.exit_code, missing.json()["error"]["code"]) == (2, "USAGE")
    assert "Cannot start /nonexistent/pg_dump" in missing.json()["error"]["message"]


async def test_standard_input_needing_mfa_asks_for_ssbg_mfa_token_instead_of_a_prompt(
    gateway_url: str, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    async with httpx.AsyncClient(base_url=f"{gateway_url}/api/v1") as client:
        created = await client.post(
            "/admin/policies",
            headers=headers(bootstrap_key),
            json={
                "name": "mfa-for-secrets",
                "effect": "require_mfa",
                "rule": {"operations": ["backup"], "classifications": ["SECRET"]},
            },
        )
    assert created.status_code == 201, created.text
    admin = await create_api_key(services, Role.ADMIN)
    arguments = ["backup", "-", "--filename", "k.pem", "-c", "SECRET", "-s", "vault", "--json"]
    code = headers(admin, totp_at=clock.now())["X-MFA-Token"]

    without = await run_cli(arguments, env_for(gateway_url, admin), stdin="secret bytes")
    with_code = await run_cli(
        arguments, env_for(gateway_url, admin, SSBG_MFA_TOKEN=code), stdin="secret bytes"
    )

    assert without.exit_code == 1
    assert without.json()["error"]["code"] == "AUTH_MFA_REQUIRED"
    assert "SSBG_MFA_TOKEN" in without.json()["error"]["message"]
    assert with_code.exit_code == 0, with_code.stdout
    assert with_code.json()["original_size"] == len("secret bytes")


async def test_an_idempotency_key_with_a_pipe_replays_only_identical_bytes(
    gateway_url: str, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    arguments = stdin_args("--idempotency-key", "db-prod-01-2026-12-07", "--json")
    env = env_for(gateway_url, operator)

    first = await run_cli(arguments, env, stdin="dump of monday\n")
    same = await run_cli(arguments, env, stdin="dump of monday\n")
    different = await run_cli(arguments, env, stdin="dump of tuesday\n")

    assert first.exit_code == 0, first.stdout
    assert same.exit_code == 0, same.stdout
    assert same.json()["backup_id"] == first.json()["backup_id"]
    assert (different.exit_code, different.json()["error"]["code"]) == (1, "CONFLICT")
    assert different.json()["error"]["details"]["reason"] == "IDEMPOTENCY_MISMATCH"
    assert await count_records(services) == 1
