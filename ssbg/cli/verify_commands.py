"""Client commands for verification at rest (SPEC §13.4): ``ssbg backups verify ID``,
``ssbg backups verify --all`` (a job on the gateway, followed with a progress bar) and
``ssbg backups release ID --reason R`` (asks for a TOTP code).

They talk to the gateway at ``SSBG_URL`` with an admin's ``SSBG_API_KEY``. Exit codes: 0 valid
(every backup of a job valid) or released, 1 invalid (or the gateway refused), 2 usage or
connection error.
"""

import json
import time
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ssbg.cli.client import ClientFailure, Gateway, fail, out, usage_error
from ssbg.cli.settings_loader import err
from ssbg.domain.enums import Classification

EXIT_INVALID = 1
ROLE_HINT = "an admin (or super_admin)"
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def verify(
    backup_id: Annotated[
        UUID | None, typer.Argument(help="The backup to verify (or --all).", show_default=False)
    ] = None,
    every: Annotated[
        bool,
        typer.Option("--all", help="Verify every ACTIVE and QUARANTINED backup, as a job."),
    ] = False,
    source_system: Annotated[
        str | None, typer.Option("--source-system", help="With --all: a glob, e.g. 'db-*'.")
    ] = None,
    classification: Annotated[
        Classification | None,
        typer.Option("--classification", case_sensitive=False, help="With --all."),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="With --all: ACTIVE or QUARANTINED (repeatable)."),
    ] = None,
    job: Annotated[
        UUID | None, typer.Option("--job", help="Follow a job already started (its job_id).")
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", min=0.01, help="How often a job is polled.")
    ] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Verify backups at rest (one, or --all as a job with a progress bar).

    Every segment is authenticated and both SHA-512s checked; no plaintext is released. An
    INVALID backup is quarantined by the gateway. Exit 0 when everything verified is VALID,
    1 when something is INVALID (or the gateway refused), 2 usage or connection error.
    """
    modes = sum((backup_id is not None, every, job is not None))
    filters = source_system or classification or status
    try:
        if modes != 1:
            raise usage_error("Name one backup ID, or --all, or --job JOB_ID.")
        if filters and not every:
            raise usage_error("--source-system, --classification and --status go with --all.")
        gateway = Gateway.from_env(ROLE_HINT)
        if backup_id is not None:
            _verify_one(gateway, backup_id, as_json=as_json)
            return
        if job is None:
            selection = {
                "source_system": source_system,
                "classification": classification.value if classification else None,
                "status": [value.upper() for value in status] if status else None,
            }
            started = gateway.data(
                "POST", "/admin/verify", body={k: v for k, v in selection.items() if v}
            )["data"]
            job = UUID(started["job_id"])
        finished = _follow(gateway, job, poll_seconds, show_progress=not as_json)
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(finished))
    else:
        failed = finished["failed"]
        colour = "red" if failed else "green"
        out.print(
            f"Verify job [bold]{finished['job_id']}[/]: {finished['verified']} of "
            f"{finished['total']} verified, [{colour}]{failed} invalid[/]"
            + (" (quarantined; see ssbg backups list --status QUARANTINED)" if failed else ""),
            soft_wrap=True,
        )
    if finished["failed"]:
        raise typer.Exit(EXIT_INVALID)


def _verify_one(gateway: Gateway, backup_id: UUID, *, as_json: bool) -> None:
    result = gateway.data("POST", f"/backups/{backup_id}/verify")["data"]
    if as_json:
        print(json.dumps(result))
    elif result["valid"]:
        out.print(
            f"Backup [bold]{backup_id}[/] is [green]VALID[/] ({result['verified_at']}).",
            soft_wrap=True,
        )
    else:
        detail = f" ({', '.join(result['mismatched'])})" if result["mismatched"] else ""
        out.print(
            f"Backup [bold]{backup_id}[/] is [red]INVALID[/]: {result['reason']}{detail}; "
            f"status {result['status']}.",
            soft_wrap=True,
        )
    if not result["valid"]:
        raise typer.Exit(EXIT_INVALID)


def _follow(
    gateway: Gateway, job_id: UUID, poll_seconds: float, *, show_progress: bool
) -> dict[str, Any]:
    """Poll the job until it is COMPLETED, with a progress bar on stderr."""
    progress = Progress(
        TextColumn("verify"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} invalid"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task("verify", total=None, failed=0)
        while True:
            job: dict[str, Any] = gateway.data("GET", f"/admin/verify/{job_id}")["data"]
            done = job["status"] == "COMPLETED"
            total = job["verified"] if done else max(job["total"], job["verified"])
            progress.update(task, total=total, completed=job["verified"], failed=job["failed"])
            if done:
                return job
            time.sleep(poll_seconds)


def release(
    backup_id: Annotated[UUID, typer.Argument(help="The QUARANTINED backup to release.")],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (10-1000 characters; audited).")
    ],
    as_json: JsonOption = False,
) -> None:
    """Release a QUARANTINED backup to ACTIVE (admin with MFA).

    Only once a verification made since the quarantine found it VALID. The TOTP code comes
    from SSBG_MFA_TOKEN or a prompt.
    """
    try:
        gateway = Gateway.from_env(ROLE_HINT)
        record = gateway.data("POST", f"/backups/{backup_id}/release", body={"reason": reason})
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(record["data"]))
        return
    out.print(f"Released backup [bold]{backup_id}[/]: {record['data']['status']}.", soft_wrap=True)
