"""Building audit chains for tests, tampering with them in the database, and running the CLI.

Tampering goes straight to the tables (SQLAlchemy Core with the tables' own column types, so
the same helper works on SQLite and PostgreSQL): these helpers are the attacker with database
access, not a way around our services.
"""

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from ssbg.cli.main import app as cli_app
from ssbg.domain.audit_bundle import parse_header, signed_head_input
from ssbg.domain.audit_chain import (
    GENESIS_HASH,
    ChainedFields,
    compute_entry_hash,
    format_timestamp,
)
from ssbg.domain.audit_checkpoint import checkpoint_signing_input
from ssbg.domain.audit_events import AuditEvent
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.infrastructure.crypto.key_store import fingerprint_of
from ssbg.infrastructure.db.models import AuditChainHead, AuditCheckpoint, AuditLogEntry
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.factories import headers

ENTRIES = AuditLogEntry.__table__
CHECKPOINTS = AuditCheckpoint.__table__
HEAD = AuditChainHead.__table__


def rich_event(number: int) -> AuditEvent:
    """An event that fills every hashed field, with nested, non-ASCII and null details."""
    return AuditEvent(
        action=AuditAction.POLICY_CHECK_ALLOW,
        resource=f"backup:{uuid4()}",
        result=AuditResult.SUCCESS,
        actor_id=uuid4(),
        actor_role="admin",
        details={"n": number, "note": "héllo ✓", "nested": {"list": [1, "two", None, True]}},
        source_ip="198.51.100.7",
        request_id=f"req-{number}",
    )


async def append_until(services: Services, head: int, *, per_transaction: int = 500) -> None:
    """Append rich events through the real ``AuditTrail`` until the chain head is ``head``."""
    current = (await services.audit.head()).sequence_number
    while current < head:
        async with services.db.transaction(write=True) as tx:
            for _ in range(min(per_transaction, head - current)):
                current += 1
                await services.trail.append(tx, rich_event(current))


def chain_rows(
    count: int, interval: int, signing_key: ec.EllipticCurvePrivateKey, *, batch: int = 5_000
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """A genuine chain of ``count`` entries from genesis, with its signed checkpoints, as rows
    for bulk insertion: what ``AuditTrail.append`` would have written, built without a round
    trip per entry (for long chains in tests and benchmarks)."""
    prev_hash = GENESIS_HASH
    moment = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    entries: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    for sequence in range(1, count + 1):
        event = rich_event(sequence)
        occurred_at = moment + timedelta(milliseconds=sequence)
        row: dict[str, Any] = {
            "event_id": uuid4(),
            "sequence_number": sequence,
            "occurred_at": occurred_at,
            "actor_id": event.actor_id,
            "actor_role": event.actor_role,
            "action": event.action.value,
            "resource": event.resource,
            "result": event.result.value,
            "details": event.details,
            "source_ip": event.source_ip,
            "request_id": event.request_id,
            "incident_level": 0,
            "prev_hash": prev_hash,
        }
        row["entry_hash"] = prev_hash = hash_of(row, prev_hash)
        entries.append(row)
        if sequence % interval == 0:
            signed = sign_checkpoint(
                signing_key,
                sequence_number=sequence,
                entry_hash=prev_hash,
                previous=sequence - interval,
                interval=interval,
                created_at=format_timestamp(occurred_at),
            )
            checkpoints.append({**signed, "created_at": occurred_at})
        if len(entries) == batch:
            yield entries, checkpoints
            entries, checkpoints = [], []
    if entries:
        yield entries, checkpoints


async def seed_chain(
    engine: AsyncEngine, count: int, interval: int, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """Write a genuine chain of ``count`` entries into an empty audit log, and its head."""
    last: dict[str, Any] = {}
    for entries, checkpoints in chain_rows(count, interval, signing_key):
        async with engine.begin() as connection:
            await connection.execute(insert(ENTRIES), entries)
            if checkpoints:
                await connection.execute(insert(CHECKPOINTS), checkpoints)
        last = entries[-1]
    async with engine.begin() as connection:
        await connection.execute(
            update(HEAD).values(
                sequence_number=last["sequence_number"], entry_hash=last["entry_hash"]
            )
        )


# -- the attacker ---------------------------------------------------------------------------


async def execute(services: Services, *statements: Any) -> None:
    async with services.db.engine.begin() as connection:
        for statement in statements:
            await connection.execute(statement)


async def update_entry(services: Services, target: int, /, **values: Any) -> None:
    await execute(
        services, update(ENTRIES).where(ENTRIES.c.sequence_number == target).values(**values)
    )


async def entry_row(services: Services, sequence_number: int) -> dict[str, Any]:
    async with services.db.engine.connect() as connection:
        row = (
            await connection.execute(
                select(ENTRIES).where(ENTRIES.c.sequence_number == sequence_number)
            )
        ).one()
    return dict(row._mapping)


async def anchor_at(
    services: Services, sequence_number: int, anchored_at: datetime
) -> dict[str, Any]:
    """The ``anchor`` a validation reports when the anchor names ``sequence_number``."""
    return {
        "sequence": sequence_number,
        "hash": (await entry_row(services, sequence_number))["entry_hash"],
        "anchored_at": format_timestamp(anchored_at),
    }


async def head_row(services: Services) -> tuple[int, str]:
    async with services.db.engine.connect() as connection:
        row = (await connection.execute(select(HEAD.c.sequence_number, HEAD.c.entry_hash))).one()
    return int(row[0]), str(row[1])


async def set_head(services: Services, sequence_number: int, entry_hash: str) -> None:
    await execute(
        services,
        update(HEAD).values(sequence_number=sequence_number, entry_hash=entry_hash),
    )


async def shift_entries_up(services: Services, from_sequence: int) -> None:
    """Renumber entries ``from_sequence..`` one up (in two steps: the column is unique)."""
    seq = ENTRIES.c.sequence_number
    await execute(
        services,
        update(ENTRIES).where(seq >= from_sequence).values(sequence_number=-(seq + 1)),
        update(ENTRIES).where(seq < 0).values(sequence_number=-seq),
    )


async def swap_entries(services: Services, first: int, second: int) -> None:
    seq = ENTRIES.c.sequence_number
    await execute(
        services,
        update(ENTRIES).where(seq == first).values(sequence_number=-1),
        update(ENTRIES).where(seq == second).values(sequence_number=first),
        update(ENTRIES).where(seq == -1).values(sequence_number=second),
    )


def hash_of(row: dict[str, Any], prev_hash: str) -> str:
    fields = ChainedFields(
        **{name: row[name] for name in ChainedFields.__dataclass_fields__ if name in row}
    )
    return compute_entry_hash(prev_hash, fields)


async def insert_forged_entry(services: Services, sequence_number: int, prev_hash: str) -> str:
    """A well-formed entry whose hash is right for its own content; returns its hash."""
    row = {
        "event_id": uuid4(),
        "sequence_number": sequence_number,
        "occurred_at": (await entry_row(services, 1))["occurred_at"],
        "actor_id": None,
        "actor_role": None,
        "action": AuditAction.SYSTEM_START.value,
        "resource": "system",
        "result": AuditResult.SUCCESS.value,
        "details": {"forged": True},
        "source_ip": None,
        "request_id": None,
        "incident_level": 0,
        "prev_hash": prev_hash,
    }
    row["entry_hash"] = hash_of(row, prev_hash)
    await execute(services, insert(ENTRIES).values(**row))
    return str(row["entry_hash"])


async def rewrite_chain_after(services: Services, last_kept: int) -> None:
    """Change every entry after ``last_kept`` and recompute all their hashes and the head:
    the chain is internally consistent again, only the signed checkpoints disagree."""
    async with services.db.engine.connect() as connection:
        rows = [
            dict(row._mapping)
            for row in await connection.execute(
                select(ENTRIES)
                .where(ENTRIES.c.sequence_number >= last_kept)
                .order_by(ENTRIES.c.sequence_number)
            )
        ]
    prev_hash = rows[0]["entry_hash"]
    statements = []
    for row in rows[1:]:
        row["details"] = {**row["details"], "rewritten": True}
        row["prev_hash"] = prev_hash
        row["entry_hash"] = prev_hash = hash_of(row, prev_hash)
        statements.append(
            update(ENTRIES)
            .where(ENTRIES.c.sequence_number == row["sequence_number"])
            .values(details=row["details"], prev_hash=row["prev_hash"], entry_hash=prev_hash)
        )
    statements.append(update(HEAD).values(entry_hash=prev_hash))
    await execute(services, *statements)


def sign_checkpoint(
    private_key: ec.EllipticCurvePrivateKey,
    *,
    sequence_number: int,
    entry_hash: str,
    previous: int,
    interval: int,
    created_at: str = "2026-11-27T12:00:00.000000Z",
) -> dict[str, Any]:
    message = checkpoint_signing_input(
        sequence_number=sequence_number,
        entry_hash=entry_hash,
        created_at=created_at,
        checkpoint_interval=interval,
        previous_checkpoint_sequence=previous,
    )
    signature = private_key.sign(message, ec.ECDSA(hashes.SHA384()))
    return {
        "sequence_number": sequence_number,
        "entry_hash": entry_hash,
        "created_at": created_at,
        "checkpoint_interval": interval,
        "previous_checkpoint_sequence": previous,
        "signing_key_id": fingerprint_of(private_key.public_key()),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def sign_bundle_head(
    private_key: ec.EllipticCurvePrivateKey, records: list[dict[str, Any]]
) -> None:
    """Sign the signed head of the bundle ``records`` afresh with ``private_key``, over their
    header and last entry as they now are (what a forger holding that key would do)."""
    header = parse_header(records[0], 1)
    entries = [record for record in records if record["type"] == "entry"]
    if entries:
        sequence_number, entry_hash = entries[-1]["sequence_number"], entries[-1]["entry_hash"]
    else:
        sequence_number, entry_hash = header.from_sequence - 1, header.anchor_hash or ""
    message = signed_head_input(header, sequence_number, entry_hash)
    signature = private_key.sign(message, ec.ECDSA(hashes.SHA384()))
    head = next(record for record in records if record["type"] == "signed_head")
    head.update(
        sequence_number=sequence_number,
        entry_hash=entry_hash,
        signing_key_id=fingerprint_of(private_key.public_key()),
        signature=base64.b64encode(signature).decode("ascii"),
    )


# -- undoing a validator's own entry, so the second validator sees the same tampered state --


@dataclass(frozen=True)
class ChainState:
    max_entry: int
    max_checkpoint: int
    head: tuple[int, str]


async def chain_state(services: Services) -> ChainState:
    async with services.db.engine.connect() as connection:
        max_entry = (await connection.execute(select(func.max(ENTRIES.c.sequence_number)))).one()
        max_checkpoint = (
            await connection.execute(select(func.max(CHECKPOINTS.c.sequence_number)))
        ).one()
    return ChainState(
        max_entry=int(max_entry[0] or 0),
        max_checkpoint=int(max_checkpoint[0] or 0),
        head=await head_row(services),
    )


async def restore_chain_state(services: Services, state: ChainState) -> None:
    """Remove what was appended since ``state`` (the validator's ``AUDIT_VALIDATE``)."""
    await execute(
        services,
        delete(ENTRIES).where(ENTRIES.c.sequence_number > state.max_entry),
        delete(CHECKPOINTS).where(CHECKPOINTS.c.sequence_number > state.max_checkpoint),
        update(HEAD).values(sequence_number=state.head[0], entry_hash=state.head[1]),
    )


# -- the CLI --------------------------------------------------------------------------------


def cli_env(settings: Settings) -> dict[str, str]:
    assert settings.key_password is not None
    return {
        "SSBG_ENV": "development",
        "SSBG_DATA_DIR": str(settings.data_dir),
        "SSBG_DATABASE_URL": settings.resolved_database_url,
        "SSBG_KEYSTORE_DIR": str(settings.resolved_keystore_dir),
        "SSBG_AUDIT_ANCHOR_FILE": str(settings.resolved_audit_anchor_file),
        "SSBG_KEY_PASSWORD": settings.key_password.get_secret_value(),
        "SSBG_STORAGE_PATH": str(settings.resolved_storage_path),
        "SSBG_AUDIT_CHECKPOINT_INTERVAL": str(settings.audit_checkpoint_interval),
        "SSBG_AUDIT_VALIDATION_WORKERS": str(settings.audit_validation_workers),
        "SSBG_AUDIT_VALIDATION_SEGMENT_ENTRIES": str(settings.audit_validation_segment_entries),
    }


@dataclass(frozen=True)
class CliOutcome:
    exit_code: int
    stdout: str
    stderr: str = ""

    def json(self) -> Any:
        """The command's one JSON line: the last line (a server sharing the process in a
        test may log to the same captured stdout before it)."""
        return json.loads(self.stdout.strip().splitlines()[-1])


async def run_cli(
    args: list[str], env: dict[str, str] | None = None, *, stdin: str | None = None
) -> CliOutcome:
    """Invoke ``ssbg`` in-process, in a worker thread (the command runs its own event loop);
    ``stdin`` answers its prompts."""

    def invoke() -> CliOutcome:
        result = CliRunner().invoke(cli_app, args, env=env, input=stdin, catch_exceptions=False)
        return CliOutcome(result.exit_code, result.stdout, result.stderr)

    return await asyncio.to_thread(invoke)


async def cli_verify(settings: Settings) -> CliOutcome:
    return await run_cli(["audit", "verify", "--json"], cli_env(settings))


async def validate_both(
    client: httpx.AsyncClient, auditor: IssuedApiKey, services: Services, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """``POST /audit/validate``'s result, then ``ssbg audit verify``'s on the same chain (the
    ``AUDIT_VALIDATE`` entry the API recorded is taken back first), and the CLI's exit code."""
    state = await chain_state(services)
    response = await client.post("/audit/validate", headers=headers(auditor))
    assert response.status_code == 200
    await restore_chain_state(services, state)
    cli = await cli_verify(settings)
    return response.json()["data"], cli.json(), cli.exit_code


def write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_bytes(
        b"".join(
            (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
            for record in records
        )
    )


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def replace_history(services: Services, count: int) -> tuple[int, str]:
    """Delete every entry and checkpoint and write ``count`` fresh entries from genesis, with
    correct hashes, then move the head to them: a young chain's history replaced by someone
    who can write the database (and cannot sign). Returns the new head."""
    forger = ec.generate_private_key(ec.SECP384R1())  # never used: no checkpoint is reached
    rows = [row for entries, _ in chain_rows(count, count + 1, forger) for row in entries]
    for row in rows:
        row["details"] = {**row["details"], "replaced": True}
    prev_hash = GENESIS_HASH
    for row in rows:
        row["prev_hash"] = prev_hash
        row["entry_hash"] = prev_hash = hash_of(row, prev_hash)
    await execute(services, delete(ENTRIES), delete(CHECKPOINTS))
    if rows:
        await execute(services, insert(ENTRIES).values(rows))
    await set_head(services, count, prev_hash)
    return count, prev_hash
