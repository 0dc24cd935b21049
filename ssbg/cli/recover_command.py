"""``ssbg recover``: offline decryption of one backup's objects with the owner's key file."""

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ssbg.domain.errors import IntegrityFailure, KeyUnavailable
from ssbg.services.offline_recovery import load_private_key_file, recover_to_file

EXIT_INTEGRITY = 1
EXIT_USAGE = 2
err = Console(stderr=True)


def recover(
    data_enc: Annotated[Path, typer.Argument(help="The backup's data.enc object.")],
    wrapped_dek: Annotated[Path, typer.Argument(help="The backup's dek.wrapped object.")],
    private_key: Annotated[
        Path,
        typer.Option(
            "--private-key",
            help="The key version's P-NNN.private.pem (or older .p12) file.",
        ),
    ],
    output: Annotated[Path, typer.Option("--output", help="Where to write the plaintext.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Decrypt a backup offline, verifying every segment; exit 1 and no output on any
    integrity failure (modified, truncated, reordered or swapped objects, or another key).

    The key password comes from SSBG_KEY_PASSWORD, or is prompted for.
    """
    for path in (data_enc, wrapped_dek, private_key):
        if not path.is_file():
            err.print(f"[red]not a readable file:[/] {path}")
            raise typer.Exit(EXIT_USAGE)
    if output.is_dir() or not output.parent.is_dir():
        err.print(f"[red]cannot write the output here:[/] {output}")
        raise typer.Exit(EXIT_USAGE)
    password = os.environ.get("SSBG_KEY_PASSWORD") or typer.prompt(
        "Key password", hide_input=True, err=True
    )
    try:
        key = load_private_key_file(private_key, password)
    except KeyUnavailable as exc:
        err.print(f"[red]{exc.message}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        recovered = recover_to_file(data_enc, wrapped_dek, key, output)
    except IntegrityFailure:
        err.print(
            "[red]integrity failure:[/] the objects do not verify with this key (modified, "
            "truncated, reordered or swapped, or wrapped under another key version). "
            "Nothing was written."
        )
        raise typer.Exit(EXIT_INTEGRITY) from None
    except OSError as exc:
        err.print(f"[red]cannot recover:[/] {exc.strerror or type(exc).__name__}")
        raise typer.Exit(EXIT_USAGE) from None
    result = {
        "backup_id": str(recovered.backup_id),
        "key_version": recovered.key_version,
        "size": recovered.size,
        "checksum_plaintext": recovered.checksum_plaintext,
        "format_version": recovered.format_version,
        "compression": recovered.compression,
        "output": str(output),
    }
    if as_json:
        print(json.dumps(result))
    else:
        typer.echo(
            f"Recovered backup {recovered.backup_id} (key {recovered.key_version}): "
            f"{recovered.size} bytes, SHA-512 {recovered.checksum_plaintext}, to {output}"
        )
