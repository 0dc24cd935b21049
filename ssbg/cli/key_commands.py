"""Key store commands (host access, the gateway's own configuration): ``ssbg keys …``."""

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from ssbg.cli.settings_loader import EXIT_USAGE, err, load_settings
from ssbg.domain.errors import SsbgError

if TYPE_CHECKING:
    from datetime import datetime

    from ssbg.settings import Settings

EXIT_REFUSED = 1

out = Console()
app = typer.Typer(
    name="keys", help="The key store: key files and key versions.", no_args_is_help=True
)


async def _upgrade(settings: "Settings") -> list[str]:
    from ssbg.services.container import build_services

    services = build_services(settings)
    try:
        return await services.key_files.upgrade_key_files(via="cli")
    finally:
        await services.close()


@app.command()
def upgrade(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Rewrite key files of earlier versions (PKCS#12) in the current format, audited.

    The gateway also does this at start-up; safe to run while replicas serve."""
    from ssbg.infrastructure.log_config import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        upgraded = asyncio.run(_upgrade(settings))
    except SsbgError as exc:
        err.print(f"[red]upgrade failed:[/] {exc.message}")
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        print(json.dumps({"upgraded": upgraded}))
    elif upgraded:
        out.print(f"Upgraded: {', '.join(upgraded)}")
    else:
        out.print("Every key file is in the current format: nothing to do.")


async def _list(settings: "Settings") -> list[dict[str, object]]:
    from ssbg.services.container import build_services

    services = build_services(settings)
    try:
        views = await services.keys.list_keys()
    finally:
        await services.close()
    return [
        {
            "version": view.record.version,
            "status": view.record.status.value,
            "created_at": _iso(view.record.created_at),
            "retired_at": _iso(view.record.retired_at),
            "destroyed_at": _iso(view.record.destroyed_at),
            "public_key_sha256": view.record.fingerprint,
            "backups": {"count": view.backups, "bytes": view.bytes},
        }
        for view in views
    ]


def _iso(moment: "datetime | None") -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


@app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Every key version: status, times, public key fingerprint, backups it protects."""
    from ssbg.infrastructure.log_config import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        versions = asyncio.run(_list(settings))
    except SsbgError as exc:
        err.print(f"[red]cannot list keys:[/] {exc.message}")
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        print(json.dumps({"keys": versions}))
        return
    table = Table("version", "status", "created", "backups", "bytes", "public key SHA-256")
    for version in versions:
        backups = version["backups"]
        assert isinstance(backups, dict)
        table.add_row(
            str(version["version"]),
            str(version["status"]),
            str(version["created_at"]),
            str(backups["count"]),
            f"{backups['bytes']:,}",
            str(version["public_key_sha256"])[:16] + "…",
        )
    out.print(table)


async def _rotate(settings: "Settings", reason: str) -> tuple[str, str]:
    from ssbg.services.container import build_services

    services = build_services(settings)
    try:
        rotation = await services.keys.rotate(None, reason, via="cli")
    finally:
        await services.close()
    return rotation.version.version, rotation.previous


@app.command()
def rotate(
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Make a new key version ACTIVE (audited KEY_ROTATE, actor cli). Running gateways use it
    for their next backup; the previous version is RETIRED and still unwraps."""
    from ssbg.infrastructure.log_config import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if len(reason.strip()) < 3:
        err.print("[red]--reason must say why (3 characters or more).[/]")
        raise typer.Exit(EXIT_USAGE)
    try:
        version, previous = asyncio.run(_rotate(settings, reason))
    except SsbgError as exc:
        err.print(f"[red]rotation refused:[/] {exc.message}")
        raise typer.Exit(EXIT_REFUSED) from None
    if as_json:
        print(json.dumps({"version": version, "status": "ACTIVE", "previous": previous}))
    else:
        out.print(f"{version} is ACTIVE; {previous} is RETIRED.")


@app.command("verify-certificate")
def verify_certificate(
    certificate: Annotated[Path, typer.Argument(help="A destruction certificate (JSON).")],
    trusted_key: Annotated[
        Path,
        typer.Option("--trusted-key", help="The audit signing public key (PEM) you trust."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check a key destruction certificate offline: exit 0 valid, 1 invalid."""
    from ssbg.infrastructure.crypto.audit_signing import public_key_from_pem
    from ssbg.infrastructure.crypto.certificates import verify_certificate as verify

    try:
        key = public_key_from_pem(trusted_key.read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError):
        err.print("[red]--trusted-key is not a readable P-384 public key (PEM).[/]")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        document = json.loads(certificate.read_bytes())
    except OSError:
        err.print(f"[red]cannot read {certificate}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    except ValueError:
        document = None
    check = verify(document, key)
    result = check.as_dict(document)
    if as_json:
        print(json.dumps(result))
    elif check.valid:
        out.print(
            f"[green]VALID[/] {result['key_version']} destroyed at {result['destroyed_at']}: "
            f"{result['backups']} backup(s) made unrecoverable."
        )
    else:
        out.print(f"[red]INVALID[/] ({check.reason})")
    raise typer.Exit(0 if check.valid else EXIT_REFUSED)
