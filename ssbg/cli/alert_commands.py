"""Client commands for alerts (SPEC §13.2): ``ssbg alerts list|show|ack|investigate|resolve``.

They talk to the gateway at ``SSBG_URL`` with an admin's ``SSBG_API_KEY`` (see
:mod:`ssbg.cli.client` for the environment, the TOTP prompt and the exit codes: 0 done,
1 the gateway refused, 2 usage or connection error).
"""

import json
from typing import Annotated, Any
from uuid import UUID

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ssbg.cli.client import ClientFailure, Gateway, fail, out
from ssbg.domain.alerts import AlertSeverity, AlertStatus, AlertStep
from ssbg.domain.detection import RuleId

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
AlertId = Annotated[UUID, typer.Argument(help="The alert's identifier (alert_id).")]
ROLE_HINT = "an admin (or super_admin)"

app = typer.Typer(
    name="alerts",
    help="Alerts raised by the detection rules M1-M10 (client: SSBG_URL, SSBG_API_KEY).",
    no_args_is_help=True,
)


@app.command("list")
def list_alerts(
    status: Annotated[
        AlertStatus | None,
        typer.Option("--status", case_sensitive=False, help="The effective status."),
    ] = None,
    severity: Annotated[
        AlertSeverity | None, typer.Option("--severity", case_sensitive=False)
    ] = None,
    rule: Annotated[
        RuleId | None, typer.Option("--rule", case_sensitive=False, help="M1 … M10.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Alerts per page.")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The cursor a previous page printed.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--all", help="Follow the cursors to the last page.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Alerts, newest first. One page of --limit unless --all; --json prints the JSON list
    of alert objects."""
    params: dict[str, Any] = {
        "status": status.value if status else None,
        "severity": severity.value if severity else None,
        "rule_id": rule.value if rule else None,
        "limit": limit,
        "cursor": cursor,
    }
    alerts: list[dict[str, Any]] = []
    try:
        gateway = Gateway.from_env(ROLE_HINT)
        while True:
            page = gateway.data("GET", "/admin/alerts", params=params)
            alerts.extend(page["data"])
            next_cursor = page["meta"].get("next_cursor")
            if not (follow and next_cursor):
                break
            params["cursor"] = next_cursor
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(alerts))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("alert_id", no_wrap=True, min_width=36)
    for name in ("rule", "severity", "status"):
        table.add_column(name, no_wrap=True)
    table.add_column("subject", overflow="fold")
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("triggered_at (UTC)", no_wrap=True)
    table.add_column("last_seen_at (UTC)", no_wrap=True)
    for alert in alerts:
        table.add_row(
            alert["alert_id"],
            alert["rule_id"],
            alert["severity"],
            alert["status"],
            alert["subject"],
            str(alert["count"]),
            _moment(alert["triggered_at"]),
            _moment(alert["last_seen_at"]),
        )
    # Piped output is not cut to 80 columns: identifiers must stay whole.
    (out if out.is_terminal else Console(width=200)).print(table)
    if next_cursor and not follow:
        out.print(f"More: ssbg alerts list --cursor {next_cursor} (or --all)", soft_wrap=True)


def _moment(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else ""


@app.command("show")
def show_alert(alert_id: AlertId, as_json: JsonOption = False) -> None:
    """One alert, with its context and who handled it."""
    try:
        alert = Gateway.from_env(ROLE_HINT).data("GET", f"/admin/alerts/{alert_id}")["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(alert))
        return
    table = Table.grid(padding=(0, 2))
    for name, value in alert.items():
        shown = json.dumps(value) if isinstance(value, dict) else value
        table.add_row(f"[bold]{name}[/]", "" if shown is None else str(shown))
    out.print(table)


def _take_step(step: AlertStep, alert_id: UUID, note: str | None, *, as_json: bool) -> None:
    body = {"note": note} if note is not None else None
    try:
        gateway = Gateway.from_env(ROLE_HINT)
        alert = gateway.data("POST", f"/admin/alerts/{alert_id}/{step.value}", body=body)["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(alert))
    else:
        out.print(
            f"Alert {alert['alert_id']} ({alert['rule_id']}, {alert['subject']}) is now "
            f"[bold]{alert['status']}[/].",
            soft_wrap=True,
        )


NoteOption = Annotated[
    str | None, typer.Option("--note", help="What you found or did (recorded with the alert).")
]


@app.command("ack")
def acknowledge(alert_id: AlertId, note: NoteOption = None, as_json: JsonOption = False) -> None:
    """NEW or ESCALATED → ACKNOWLEDGED (audited ALERT_ACK)."""
    _take_step(AlertStep.ACKNOWLEDGE, alert_id, note, as_json=as_json)


@app.command("investigate")
def investigate(alert_id: AlertId, note: NoteOption = None, as_json: JsonOption = False) -> None:
    """ACKNOWLEDGED → INVESTIGATING (audited ALERT_INVESTIGATE)."""
    _take_step(AlertStep.INVESTIGATE, alert_id, note, as_json=as_json)


@app.command("resolve")
def resolve(
    alert_id: AlertId,
    note: Annotated[str, typer.Option("--note", help="Required: how it was resolved (recorded).")],
    as_json: JsonOption = False,
) -> None:
    """ACKNOWLEDGED or INVESTIGATING → RESOLVED (audited ALERT_RESOLVE). A later trigger of
    the same rule and subject opens a new alert."""
    _take_step(AlertStep.RESOLVE, alert_id, note, as_json=as_json)
