"""``ssbg audit verify`` (server side or offline) and ``ssbg audit export`` (client).

Exit codes of ``verify``: 0 the chain is valid, 1 it is not, 2 it could not be checked (usage,
configuration, database or key store unavailable, a bundle not in the documented format).
``export``: 0 the complete bundle is in ``--output``, 1 the gateway refused or the transfer
broke off (nothing is left at ``--output``), 2 usage or connection error.
"""

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ssbg.cli.client import (
    ClientFailure,
    Gateway,
    fail,
    out,
    refusal,
    transfer_progress,
    usage_error,
)
from ssbg.cli.settings_loader import EXIT_USAGE, err, load_settings
from ssbg.domain.audit_bundle import ENTRY_PREFIX
from ssbg.domain.audit_verification import SequenceRange, ValidationResult
from ssbg.domain.errors import SsbgError, ValidationNotRecorded

if TYPE_CHECKING:  # the server side is imported by the commands that use it (settings_loader)
    from ssbg.settings import Settings

EXIT_INVALID = 1

app = typer.Typer(
    name="audit",
    help="Audit evidence: verify the chain or an exported bundle; export a bundle.",
    no_args_is_help=True,
)

FromOption = Annotated[
    int | None, typer.Option("--from-sequence", min=1, help="First entry (default 1).")
]
ToOption = Annotated[
    int | None, typer.Option("--to-sequence", min=1, help="Last entry (default: the head).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _fail(code: str, message: str, *, as_json: bool, exit_code: int = EXIT_USAGE) -> NoReturn:
    fail(ClientFailure(code, message, exit_code=exit_code), as_json=as_json)


async def _verify_database(settings: "Settings", requested: SequenceRange) -> ValidationResult:
    from ssbg.services.container import build_services

    services = build_services(settings)
    try:
        return await services.audit_validation.validate_chain(None, requested, via="cli")
    finally:
        await services.close()


def _print_result(result: ValidationResult, *, as_json: bool, source: str) -> None:
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    if result.valid:
        anchor = result.anchor
        reached = f"; anchor {anchor.sequence} reached" if anchor is not None else ""
        out.print(
            f"[green]VALID[/] {source}: {result.entries_checked} entries and "
            f"{result.checkpoints_verified} checkpoints verified; head {result.head.sequence} "
            f"{result.head.hash[:16]}…{reached}",
            soft_wrap=True,
        )
    else:
        reason = result.reason.value if result.reason else "?"
        out.print(
            f"[red]INVALID[/] {source}: first invalid sequence "
            f"{result.first_invalid_sequence} ({reason}); {result.entries_checked} entries "
            f"and {result.checkpoints_verified} checkpoints verified before it.",
            soft_wrap=True,
        )


@app.command()
def verify(
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Verify this exported bundle offline (no database)."),
    ] = None,
    trusted_key: Annotated[
        Path | None,
        typer.Option(
            "--trusted-key",
            help="With --bundle: PEM public key the checkpoints must be signed with "
            "(default: the key in the bundle's header).",
        ),
    ] = None,
    from_sequence: FromOption = None,
    to_sequence: ToOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify the audit chain in the configured database, or an exported bundle offline.

    Exit 0 valid, 1 invalid, 2 could not verify.
    """
    if bundle is not None:
        if from_sequence is not None or to_sequence is not None:
            _fail("USAGE", "--from/--to-sequence apply to the database only.", as_json=as_json)
        _verify_bundle(bundle, trusted_key, as_json=as_json)
        return
    if trusted_key is not None:
        _fail("USAGE", "--trusted-key applies to --bundle only.", as_json=as_json)
    from sqlalchemy.exc import SQLAlchemyError

    from ssbg.infrastructure.log_config import configure_logging

    settings = load_settings()
    configure_logging("WARNING", settings.log_format)
    try:
        requested = SequenceRange(from_sequence, to_sequence)
        result = asyncio.run(_verify_database(settings, requested))
    except ValidationNotRecorded as exc:
        # The break-glass tool still reports what it found; the person running it is told
        # that the log has no record of this validation.
        result = exc.result
        err.print(f"[yellow]Warning:[/] {exc.message}")
    except SsbgError as exc:
        _fail(exc.code, f"Cannot verify: {exc.message} {exc.details or ''}", as_json=as_json)
    except SQLAlchemyError as exc:
        _fail(
            "DATABASE_UNAVAILABLE",
            f"Cannot verify: the database cannot be read ({type(exc).__name__}); "
            "is it initialised (ssbg init)?",
            as_json=as_json,
        )
    _print_result(result, as_json=as_json, source="audit chain")
    raise typer.Exit(0 if result.valid else EXIT_INVALID)


WARNINGS = {
    "KEY_NOT_PINNED": "Signatures were checked against the key in the bundle's own header, "
    "which shows the bundle is consistent, not who made it. Pin the gateway's key, obtained "
    "independently, with --trusted-key audit-signing.public.pem.",
    "VERSION_1": "A version 1 bundle: no signed head, so its header and the entries after its "
    "last checkpoint are signed by nothing. Export it again for a version 2 bundle.",
    "NO_AUDIT_ANCHOR": "The gateway had no audit anchor when it exported this bundle, so it "
    "could not show the chain reached one.",
}


def _verify_bundle(bundle: Path, trusted_key: Path | None, *, as_json: bool) -> None:
    from ssbg.infrastructure.crypto.audit_signing import public_key_from_pem
    from ssbg.services.audit_bundle_verification import verify_bundle

    trusted: list[str] | None = None
    if trusted_key is not None:
        try:
            pem = trusted_key.read_text(encoding="ascii")
            public_key_from_pem(pem)
        except (OSError, UnicodeDecodeError, ValueError):
            _fail("USAGE", f"{trusted_key} is not an EC P-384 PEM public key.", as_json=as_json)
        trusted = [pem]
    try:
        verification = verify_bundle(bundle, trusted)
    except OSError as exc:
        _fail("USAGE", f"Cannot read {bundle}: {exc.strerror}.", as_json=as_json)
    except SsbgError as exc:
        _fail(exc.code, f"Cannot verify {bundle}: {exc.message}", as_json=as_json)
    if as_json:
        print(json.dumps(verification.as_dict()))
    else:
        _print_result(verification.result, as_json=False, source=str(bundle))
        out.print(
            f"Bundle version {verification.bundle_version}; key {verification.key_source}; "
            f"signed head {'verified' if verification.signed_head else 'none verified'}.",
            soft_wrap=True,
        )
        for warning in verification.warnings:
            err.print(f"[yellow]Warning:[/] {WARNINGS[warning.value]}")
    raise typer.Exit(0 if verification.valid else EXIT_INVALID)


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the bundle.")],
    from_sequence: FromOption = None,
    to_sequence: ToOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download an evidence bundle from the gateway at SSBG_URL with SSBG_API_KEY (auditor+)."""
    params = {
        name: value
        for name, value in (("from_sequence", from_sequence), ("to_sequence", to_sequence))
        if value is not None
    }
    partial = output.with_name(f".{output.name}.partial")
    try:
        gateway = Gateway.from_env("an auditor (or admin)")
        summary = _download(gateway, params, partial, show_progress=not as_json)
        partial.replace(output)
    except ClientFailure as failure:
        partial.unlink(missing_ok=True)
        fail(failure, as_json=as_json)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        fail(usage_error(f"Cannot write {output}: {exc.strerror}."), as_json=as_json)
    if as_json:
        print(json.dumps({"output": str(output), **summary}))
    else:
        out.print(
            f"Wrote {output}: {summary['entries']} entries, {summary['checkpoints']} "
            f"checkpoints, {summary['bytes']} bytes. Verify it with: "
            f"ssbg audit verify --bundle {output}",
            soft_wrap=True,
        )


def _download(
    gateway: Gateway, params: dict[str, int], target: Path, *, show_progress: bool
) -> dict[str, int]:
    """Stream the bundle into ``target``; check it ends with an end record whose counts match."""
    entries = checkpoints = written = 0
    last_line = b""
    with (
        gateway.connection_errors(),
        gateway.http.stream(
            "GET", gateway.url("/audit/export"), params=params, headers=gateway.headers()
        ) as response,
        transfer_progress(enabled=show_progress, total=None) as progress,
    ):
        if response.status_code != 200:
            response.read()
            raise refusal(response)
        task = progress.add_task("export", total=None)
        pending = b""
        with target.open("wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
                written += len(chunk)
                progress.update(task, advance=len(chunk))
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if line.startswith(ENTRY_PREFIX):
                        entries += 1
                    elif line.startswith(b'{"type":"checkpoint"'):
                        checkpoints += 1
                    last_line = line
            handle.flush()
            os.fsync(handle.fileno())
    expected = {"type": "end", "entries": entries, "checkpoints": checkpoints}
    try:
        complete = not pending and json.loads(last_line) == expected
    except ValueError:
        complete = False
    if not complete:
        raise ClientFailure("INCOMPLETE", "The bundle arrived incomplete; nothing was saved.")
    return {"entries": entries, "checkpoints": checkpoints, "bytes": written}
