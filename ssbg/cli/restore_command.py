"""``ssbg restore``: request a restore, collect the download token, download and verify.

``ssbg restore BACKUP_ID --justification J --output FILE`` asks the gateway for a restore (it
decrypts and verifies the whole backup before it issues a download token), then streams the
plaintext into a private partial file next to FILE, checks its length and SHA-512 against
what the gateway announced, and only then renames it into place. Under incident level 2 the
restore waits for a second admin's approval: the command prints the restore's identifier and
exits 3; ``ssbg restore --collect RESTORE_ID --output FILE`` fetches it once approved (also how
an expired or lost download is fetched again).
"""

import json
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from ssbg.cli.client import (
    EXIT_PENDING,
    ClientFailure,
    Downloaded,
    Gateway,
    check_destination,
    download_verified,
    fail,
    out,
    usage_error,
)
from ssbg.cli.settings_loader import err


def restore(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the restored file.")
    ],
    backup_id: Annotated[
        UUID | None, typer.Argument(help="The backup to restore (omit with --collect).")
    ] = None,
    justification: Annotated[
        str | None,
        typer.Option("--justification", "-j", help="Why (at least 10 characters; audited)."),
    ] = None,
    collect: Annotated[
        UUID | None,
        typer.Option(
            "--collect",
            help="Download an earlier, now approved (or expired) restore of yours by its id.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Restore a backup from the gateway at SSBG_URL into --output, verified end to end.

    Asks for a TOTP code when the gateway needs one (or reads SSBG_MFA_TOKEN). Exit 0 when
    the verified file is in place, 1 refused or failed (nothing written), 2 usage or
    connection error, 3 waiting for approval (collect later with --collect RESTORE_ID).
    """
    try:
        gateway, restore_record = _obtain_token(
            backup_id, justification, collect, output, force=force
        )
        if restore_record["status"] == "PENDING_APPROVAL":
            _report_pending(restore_record, as_json=as_json)
            raise typer.Exit(EXIT_PENDING)
        downloaded = download_verified(
            gateway,
            f"/restores/{restore_record['restore_id']}/download",
            {"X-Restore-Token": restore_record["download"]["token"]},
            output,
            force=force,
            show_progress=not as_json,
        )
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    _report_done(restore_record, downloaded, as_json=as_json)


def _obtain_token(
    backup_id: UUID | None,
    justification: str | None,
    collect: UUID | None,
    output: Path,
    *,
    force: bool,
) -> tuple[Gateway, dict[str, Any]]:
    """The gateway, and the restore record carrying a fresh download token (or pending)."""
    if (backup_id is None) == (collect is None):
        raise usage_error("Give either BACKUP_ID (a new restore) or --collect RESTORE_ID.")
    if backup_id is not None and not justification:
        raise usage_error("A restore needs --justification (why; at least 10 characters).")
    if collect is not None and justification:
        raise usage_error("--justification belongs to a new restore, not to --collect.")
    check_destination(output, force=force)
    gateway = Gateway.from_env("an admin (or super_admin)")
    if backup_id is not None:
        body = {"backup_id": str(backup_id), "justification": justification}
        record: dict[str, Any] = gateway.data("POST", "/restores", body=body)["data"]
    else:
        record = gateway.data("GET", f"/restores/{collect}")["data"]
        if record["status"] != "PENDING_APPROVAL":  # still waiting: spend no TOTP code
            record = gateway.data("POST", f"/restores/{collect}/token")["data"]
    if record["status"] != "PENDING_APPROVAL" and not (record.get("download") or {}).get("token"):
        raise ClientFailure(
            "NO_TOKEN", f"The gateway issued no download token (status {record['status']})."
        )
    return gateway, record


def _report_pending(record: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"restore_id": record["restore_id"], "status": record["status"]}))
        return
    err.print(
        f"Restore [bold]{record['restore_id']}[/] waits for approval by a second admin "
        "(incident level 2). Once approved, fetch it with:\n"
        f"  ssbg restore --collect {record['restore_id']} --output FILE",
        soft_wrap=True,
    )


def _report_done(record: dict[str, Any], downloaded: Downloaded, *, as_json: bool) -> None:
    summary = {
        "restore_id": record["restore_id"],
        "backup_id": record["backup_id"],
        "output": str(downloaded.output),
        "bytes": downloaded.bytes,
        "sha512": downloaded.sha512,
    }
    if as_json:
        print(json.dumps(summary))
        return
    out.print(
        f"Restored backup {record['backup_id']} into {downloaded.output}: {downloaded.bytes} "
        f"bytes, SHA-512 verified ({downloaded.sha512[:16]}…). Restore {record['restore_id']}.",
        soft_wrap=True,
    )
