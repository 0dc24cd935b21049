"""Client commands for backups: ``ssbg backup FILE|- …`` (what it reads:
:mod:`ssbg.cli.backup_sources`), ``ssbg backups list``, ``… show ID``."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import httpx
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ssbg.cli.backup_sources import STDIN, open_source, upload
from ssbg.cli.client import ClientFailure, Gateway, fail, out
from ssbg.cli.client import usage_error as usage
from ssbg.domain.backup_fields import MAX_COMPRESSION_LEVEL, MIN_COMPRESSION_LEVEL
from ssbg.domain.enums import Classification, Compression

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]

app = typer.Typer(
    name="backups",
    help="Backups stored in the gateway: list, show, verify, release.",
    no_args_is_help=True,
)


def backup(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="The file to back up (streamed, never buffered); - for standard input "
            "(needs --filename).",
            show_default=False,
        ),
    ],
    classification: Annotated[
        Classification, typer.Option("--classification", "-c", case_sensitive=False)
    ],
    source_system: Annotated[
        str, typer.Option("--source-system", "-s", help="The system the backup comes from.")
    ],
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="COMMAND",
            help="With FILE -: after --, a command whose output is the backup; if it fails, "
            "the upload is cut off and the backup is not kept.",
            show_default=False,
        ),
    ] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    filename: Annotated[
        str | None,
        typer.Option(
            "--filename",
            help="Name stored with the backup (default: FILE's name; required with -).",
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            help="Repeat a failed command with the same key: the gateway stores it once (with "
            "-, only if the repeated stream is byte-identical; otherwise 409).",
        ),
    ] = None,
    compress: Annotated[
        bool,
        typer.Option(
            "--compress",
            help="Compress with zstd before encryption (segments that do not shrink are "
            "stored raw).",
        ),
    ] = False,
    level: Annotated[
        int | None,
        typer.Option(
            "--level",
            min=MIN_COMPRESSION_LEVEL,
            max=MAX_COMPRESSION_LEVEL,
            help="zstd level with --compress (default 3).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Upload FILE (or standard input: -) to the gateway at SSBG_URL; it is encrypted there
    before it is stored.

    Exit 0 with the backup's identifier once it is durably stored, 1 if the gateway refused
    it or the producer command failed, 2 usage or connection error.
    """
    try:
        if level is not None and not compress:
            raise usage("--level needs --compress.")
        if str(file) == STDIN and not filename:
            raise usage("Backing up standard input (-) needs --filename NAME.")
        gateway = Gateway.from_env("an operator (or admin)")
        stdin = sys.stdin.buffer if sys.stdin is not None else None  # None: fd 0 closed
        source = open_source(file, command or [], stdin)
        try:
            response = upload(
                gateway,
                source,
                show_progress=not as_json,
                params={
                    "filename": filename or source.name,
                    "classification": classification.value,
                    "source_system": source_system,
                    "description": description,
                    "compression": Compression.ZSTD.value if compress else None,
                    "compression_level": level,
                },
                idempotency_key=idempotency_key,
            )
        finally:
            source.close()
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    record = response.json()["data"]
    if as_json:
        print(json.dumps(record))
        return
    replayed = " (already stored under this idempotency key)" if _replayed(response) else ""
    out.print(
        f"Stored backup [bold]{record['backup_id']}[/]{replayed}: {record['original_size']} "
        f"bytes{_stored_as(record)}, {record['classification']}, key {record['key_version']}, "
        f"SHA-512 {record['checksum_plaintext'][:16]}…",
        soft_wrap=True,
    )


def _stored_as(record: dict[str, Any]) -> str:
    """`` (zstd: 1234 stored)`` for a compressed backup."""
    if record.get("compression") != Compression.ZSTD.value or record.get("stored_size") is None:
        return ""
    return f" (zstd: {record['stored_size']} stored)"


def _replayed(response: httpx.Response) -> bool:
    return bool(response.headers.get("Idempotent-Replayed") == "true")


@app.command("list")
def list_backups(
    classification: Annotated[
        Classification | None, typer.Option("--classification", case_sensitive=False)
    ] = None,
    source_system: Annotated[str | None, typer.Option("--source-system")] = None,
    status: Annotated[str | None, typer.Option("--status", help="e.g. ACTIVE, FAILED.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The next_cursor a previous page printed.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Backups, newest first (operators see their own). One page; --cursor for the next."""
    try:
        gateway = Gateway.from_env("an operator, admin or auditor")
        page = gateway.data(
            "GET",
            "/backups",
            params={
                "classification": classification.value if classification else None,
                "source_system": source_system,
                "status": status.upper() if status else None,
                "limit": limit,
                "cursor": cursor,
            },
        )
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    next_cursor = page["meta"].get("next_cursor")
    if as_json:
        print(json.dumps({"data": page["data"], "next_cursor": next_cursor}))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("backup_id", no_wrap=True, min_width=36)
    for name in ("created (UTC)", "status", "classification", "source", "bytes"):
        table.add_column(name, no_wrap=True)
    table.add_column("file", overflow="fold")
    for record in page["data"]:
        table.add_row(
            record["backup_id"],
            record["created_at"][:16].replace("T", " "),
            record["status"],
            record["classification"],
            record["source_system"],
            str(record["original_size"] or ""),
            record["original_filename"] or "",
        )
    # Piped output is not cut to 80 columns: identifiers must stay whole.
    (out if out.is_terminal else Console(width=200)).print(table)
    if next_cursor:
        out.print(f"More: ssbg backups list --cursor {next_cursor}", soft_wrap=True)


@app.command("show")
def show_backup(
    backup_id: Annotated[UUID, typer.Argument(help="The backup's identifier.")],
    as_json: JsonOption = False,
) -> None:
    """One backup's metadata and its lifecycle transitions."""
    try:
        gateway = Gateway.from_env("an operator, admin or auditor")
        record = gateway.data("GET", f"/backups/{backup_id}")["data"]
        status = gateway.data("GET", f"/backups/{backup_id}/status")["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    record["transitions"] = status["transitions"]
    if as_json:
        print(json.dumps(record))
        return
    table = Table.grid(padding=(0, 2))
    for name, value in record.items():
        if name != "transitions":
            table.add_row(f"[bold]{name}[/]", "" if value is None else str(value))
    out.print(table)
    for transition in record["transitions"]:
        reason = f" ({transition['reason']})" if transition["reason"] else ""
        out.print(
            f"  {transition['at']}  {transition['from_status'] or '—'} → "
            f"{transition['to_status']}{reason}",
            soft_wrap=True,
        )
