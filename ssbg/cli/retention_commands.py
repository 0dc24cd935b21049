"""Client commands for retention and legal holds (SPEC §13.4): ``ssbg retention plan|apply``,
``ssbg backups hold|unhold``.

They talk to the gateway at ``SSBG_URL`` with an admin's ``SSBG_API_KEY`` (see
:mod:`ssbg.cli.client` for the environment, the TOTP prompt and the exit codes: 0 done,
1 the gateway refused or you declined, 2 usage or connection error).
"""

import json
from typing import Annotated, Any
from uuid import UUID

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ssbg.cli.client import EXIT_REFUSED, ClientFailure, Gateway, fail, out, prompt_mfa_code

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
ROLE_HINT = "an admin (or super_admin)"
APPLY = "/admin/retention/apply"

app = typer.Typer(
    name="retention",
    help="Retention: what the rules delete and why the rest survives (client: SSBG_URL, "
    "SSBG_API_KEY).",
    no_args_is_help=True,
)


def _console() -> Console:
    # Piped output is not cut to 80 columns: identifiers must stay whole.
    return out if out.is_terminal else Console(width=200)


def _moment(value: str) -> str:
    return value[:16].replace("T", " ")


def _print_plan(report: dict[str, Any], *, show_kept: bool = True) -> None:
    verb = "would delete" if report["dry_run"] else "deleted"
    deleted = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"Retention {verb}")
    deleted.add_column("backup_id", no_wrap=True, min_width=36)
    for name in ("created (UTC)", "source", "classification"):
        deleted.add_column(name, no_wrap=True)
    deleted.add_column("matched rules", overflow="fold")
    for entry in report["deleted"]:
        deleted.add_row(
            entry["backup_id"],
            _moment(entry["created_at"]),
            entry["source_system"],
            entry["classification"],
            ", ".join(entry["matched_rules"]),
        )
    console = _console()
    if report["deleted"]:
        console.print(deleted)
    if show_kept and report["kept"]:
        kept = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Kept")
        kept.add_column("backup_id", no_wrap=True, min_width=36)
        for name in ("created (UTC)", "source", "classification"):
            kept.add_column(name, no_wrap=True)
        kept.add_column("kept by (rule: reasons)", overflow="fold")
        for entry in report["kept"]:
            kept.add_row(
                entry["backup_id"],
                _moment(entry["created_at"]),
                entry["source_system"],
                entry["classification"],
                "; ".join(f"{rule}: {', '.join(why)}" for rule, why in entry["kept_by"].items()),
            )
        console.print(kept)
    if report["skipped"]:
        skipped = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Skipped (not deleted)")
        skipped.add_column("backup_id", no_wrap=True, min_width=36)
        skipped.add_column("reason", no_wrap=True)
        skipped.add_column("details", overflow="fold")
        for entry in report["skipped"]:
            skipped.add_row(entry["backup_id"], entry["reason"], json.dumps(entry["details"]))
        console.print(skipped)
    summary = report["summary"]
    rules = ", ".join(report["rules"]) or "none active"
    deleted_count = f"{summary['deleted']} {'to delete' if report['dry_run'] else 'deleted'}"
    out.print(
        f"Rules: {rules}. {deleted_count}, {summary['kept']} kept, {summary['skipped']} "
        f"skipped, {summary['not_matched']} matched by no rule (never deleted).",
        soft_wrap=True,
    )
    if summary["objects_pending"]:
        out.print(
            f"{summary['objects_pending']} deleted backup(s) still have objects in the store; "
            "the gateway removes them later.",
            soft_wrap=True,
        )
    if any(entry["reason"] == "MFA_REQUIRED" for entry in report["skipped"]):
        out.print(
            "A policy asks for MFA to delete some backups: run again with --mfa (or "
            "SSBG_MFA_TOKEN set).",
            soft_wrap=True,
        )


@app.command("plan")
def plan(
    kept: Annotated[
        bool, typer.Option("--kept/--no-kept", help="Also list the survivors and why.")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """What retention would delete now, with the rules that matched each backup, and why
    every other matched backup survives. Changes nothing."""
    try:
        report = Gateway.from_env(ROLE_HINT).data("POST", APPLY, body={"dry_run": True})["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(report))
        return
    _print_plan(report, show_kept=kept)


@app.command("apply")
def apply(
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without showing the plan and asking.")
    ] = False,
    mfa: Annotated[
        bool,
        typer.Option("--mfa", help="Send a TOTP code (asked for unless SSBG_MFA_TOKEN is set)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete what retention lets go: shows the plan and asks first (unless --yes), then
    deletes only the backups it showed. Held, quarantined and unmatched backups are never
    deleted; a backup held or changed since the plan is skipped."""
    try:
        gateway = Gateway.from_env(ROLE_HINT)
        body: dict[str, Any] = {"dry_run": False}
        if not yes:
            planned = gateway.data("POST", APPLY, body={"dry_run": True})["data"]
            if not planned["deleted"]:
                if as_json:
                    print(json.dumps(planned))
                else:
                    _print_plan(planned, show_kept=False)
                    out.print("Nothing to delete.")
                return
            if not as_json:
                _print_plan(planned, show_kept=False)
            if not _confirmed(len(planned["deleted"])):
                raise ClientFailure("NOT_CONFIRMED", "Nothing was deleted.", exit_code=EXIT_REFUSED)
            body["backup_ids"] = [entry["backup_id"] for entry in planned["deleted"]]
        if mfa and gateway.mfa_token is None:
            gateway.mfa_token = prompt_mfa_code()
        report = gateway.data("POST", APPLY, body=body)["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(report))
        return
    _print_plan(report, show_kept=False)


def _confirmed(count: int) -> bool:
    try:
        return bool(typer.confirm(f"Delete these {count} backup(s)?", default=False, err=True))
    except typer.Abort:
        return False


# -- legal holds (registered as ``ssbg backups hold|unhold``) ---------------------------------

BackupId = Annotated[UUID, typer.Argument(help="The backup's identifier.")]


def _hold_call(method: str, backup_id: UUID, reason: str, *, as_json: bool) -> None:
    try:
        gateway = Gateway.from_env(ROLE_HINT)
        record = gateway.data(method, f"/backups/{backup_id}/hold", body={"reason": reason})["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(record))
        return
    hold = record["legal_hold"]
    if hold["held"]:
        out.print(
            f"Backup {record['backup_id']} is under a legal hold since {hold['at']} "
            f"({hold['reason']}): it cannot be deleted or crypto-shredded.",
            soft_wrap=True,
        )
    else:
        out.print(f"Backup {record['backup_id']} is no longer held.", soft_wrap=True)


def hold(
    backup_id: BackupId,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded; e.g. a case number).")],
    as_json: JsonOption = False,
) -> None:
    """Place a legal hold (admin, TOTP code): the backup can then be deleted neither by hand
    nor by retention, and its key version cannot be crypto-shredded."""
    _hold_call("POST", backup_id, reason, as_json=as_json)


def unhold(
    backup_id: BackupId,
    reason: Annotated[str, typer.Option("--reason", help="Why the hold ends (recorded).")],
    as_json: JsonOption = False,
) -> None:
    """Release a legal hold (admin, TOTP code)."""
    _hold_call("DELETE", backup_id, reason, as_json=as_json)
