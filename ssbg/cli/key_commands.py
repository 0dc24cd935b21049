"""Key store commands (host access, the gateway's own configuration): ``ssbg keys …``."""

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ssbg.cli.settings_loader import EXIT_USAGE, err, load_settings
from ssbg.domain.errors import SsbgError

if TYPE_CHECKING:
    from ssbg.settings import Settings

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
