"""Load settings for a CLI command, or exit 2 with a message a person can act on."""

import typer
from pydantic import ValidationError
from rich.console import Console

from ssbg.settings import Settings

EXIT_USAGE = 2
err = Console(stderr=True)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        err.print("[bold red]Configuration refused:[/]")
        for error in exc.errors():
            field = ".".join(str(part) for part in error.get("loc", ())) or "settings"
            name = f"SSBG_{field.upper()}" if field != "settings" else "settings"
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            err.print(f"  {name}: {message}")
        raise typer.Exit(EXIT_USAGE) from None
