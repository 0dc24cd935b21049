"""Load settings for a CLI command, or exit 2 with a message a person can act on.

Server-side modules (settings, database, services) are imported inside the functions that use
them: the client commands (``ssbg backup``, ``ssbg restore`` …) never need them, and importing
the whole server stack would add about a second to every client command's start.
"""

import os
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from ssbg.settings import Settings

EXIT_USAGE = 2
err = Console(stderr=True)
# What a server command creates is for the gateway's user alone (SPEC §13.3).
SERVER_UMASK = 0o077


def load_settings() -> "Settings":
    """The server's settings, for a command about to use its database, keys or objects.

    Sets the umask to 077 first: every file and folder such a command (and the uvicorn workers
    ``ssbg serve`` starts, which inherit it) creates is then private, even one created by a
    library that gives no mode of its own. The code that creates them gives 0600/0700 too.
    """
    from pydantic import ValidationError

    from ssbg.settings import Settings

    os.umask(SERVER_UMASK)
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
