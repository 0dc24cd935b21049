"""Client commands for API keys (SPEC §3 Admin): ``ssbg api-keys create|list|show|revoke``.

They talk to the gateway at ``SSBG_URL`` with a super_admin's ``SSBG_API_KEY`` (see
:mod:`ssbg.cli.client` for the environment, the TOTP prompt and the exit codes: 0 done,
1 the gateway refused or you declined, 2 usage or connection error).

The raw key and, for admin and super_admin keys, the TOTP secret exist outside the key holder's
hands once: in the answer to ``create``. The command prints them once and says so; ``list`` and
``show`` cannot print them because the gateway never sends them again.
"""

import json
from typing import Annotated, Any
from uuid import UUID

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ssbg.cli.client import EXIT_REFUSED, ClientFailure, Gateway, fail, out
from ssbg.cli.issued_keys import print_secrets_once
from ssbg.domain.enums import Role

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
KeyId = Annotated[UUID, typer.Argument(help="The API key's identifier (key_id), not the key.")]
ROLE_HINT = "a super_admin"
PATH = "/admin/api-keys"

app = typer.Typer(
    name="api-keys",
    help="API keys: issue, list, show, revoke (client: SSBG_URL, a super_admin's SSBG_API_KEY).",
    no_args_is_help=True,
)


@app.command("create")
def create(
    role: Annotated[Role, typer.Option("--role", case_sensitive=False, help="The new key's role.")],
    description: Annotated[
        str, typer.Option("--description", help="Whose key and what for (1-200 characters).")
    ],
    department: Annotated[
        str | None, typer.Option("--department", help="For department rules of policies.")
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option("--expires-at", help="RFC 3339 moment, e.g. 2027-01-31T00:00:00Z."),
    ] = None,
    allowed_ips: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-ip", help="An address or CIDR block the key may be used from (repeat)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a key (super_admin; a super_admin key also needs your TOTP code). Prints the raw
    key and, for admin and super_admin keys, the TOTP secret: once, never again."""
    body: dict[str, Any] = {
        "role": role.value,
        "description": description,
        "department": department,
        "expires_at": expires_at,
        "allowed_ips": allowed_ips or [],
    }
    try:
        gateway = Gateway.from_env(ROLE_HINT)
        created = gateway.data("POST", PATH, body={k: v for k, v in body.items() if v is not None})[
            "data"
        ]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(created))
        return
    advice = ["Store it now: it is not shown again (the gateway keeps only a verifier)."]
    if created["totp_secret"] is not None:
        advice.append("The key holder adds the TOTP secret (or URI) to an authenticator app.")
    print_secrets_once(
        f"New {created['role']} API key ({created['description']}) — shown once:",
        api_key=created["api_key"],
        key_id=created["key_id"],
        totp_secret=created["totp_secret"],
        totp_uri=created["totp_uri"],
        advice=advice,
    )


@app.command("list")
def list_keys(as_json: JsonOption = False) -> None:
    """Every API key, revoked and expired ones included (never a secret). --json prints the
    JSON list of key objects."""
    try:
        keys = Gateway.from_env(ROLE_HINT).data("GET", PATH)["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(keys))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("key_id", no_wrap=True, min_width=36)
    for name in ("role", "status", "mfa"):
        table.add_column(name, no_wrap=True)
    table.add_column("description", overflow="fold")
    table.add_column("department", overflow="fold")
    for name in ("created (UTC)", "expires (UTC)", "last used (UTC)"):
        table.add_column(name, no_wrap=True)
    for key in keys:
        table.add_row(
            key["key_id"],
            key["role"],
            key["status"],
            "yes" if key["mfa_enrolled"] else "no",
            key["description"],
            key["department"] or "",
            _moment(key["created_at"]),
            _moment(key["expires_at"]),
            _moment(key["last_used_at"]),
        )
    # Piped output is not cut to 80 columns: identifiers must stay whole.
    (out if out.is_terminal else Console(width=200)).print(table)


def _moment(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else ""


def _print_key(key: dict[str, Any]) -> None:
    table = Table.grid(padding=(0, 2))
    for name, value in key.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        table.add_row(f"[bold]{name}[/]", "" if shown is None else str(shown))
    out.print(table)


@app.command("show")
def show(key_id: KeyId, as_json: JsonOption = False) -> None:
    """One API key: role, status, restrictions, who created or revoked it, last use."""
    try:
        key = Gateway.from_env(ROLE_HINT).data("GET", f"{PATH}/{key_id}")["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(key))
        return
    _print_key(key)


@app.command("revoke")
def revoke(
    key_id: KeyId,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (recorded in the audit log).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Revoke without asking.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: it stops working at once, for good; the record stays for the audit trail.
    Shows the key and asks first unless --yes."""
    try:
        gateway = Gateway.from_env(ROLE_HINT)
        if not yes:
            key = gateway.data("GET", f"{PATH}/{key_id}")["data"]
            if not _confirmed(key):
                raise ClientFailure("NOT_CONFIRMED", "Nothing was revoked.", exit_code=EXIT_REFUSED)
        revoked = gateway.data("DELETE", f"{PATH}/{key_id}", params={"reason": reason})["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(revoked))
    else:
        out.print(
            f"API key {revoked['key_id']} ({revoked['role']}, {revoked['description']}) is "
            f"[bold]{revoked['status']}[/] since {revoked['revoked_at']}.",
            soft_wrap=True,
        )


def _confirmed(key: dict[str, Any]) -> bool:
    question = (
        f"Revoke API key {key['key_id']} ({key['role']}, {key['description']}, "
        f"{key['status']})? It stops working at once and cannot be re-enabled."
    )
    try:
        return bool(typer.confirm(question, default=False, err=True))
    except typer.Abort:
        return False
