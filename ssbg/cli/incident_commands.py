"""``ssbg incident``: the gateway-wide incident level (SPEC §5, §13.2).

Two kinds of command share the group:

* ``show`` and ``set`` are client commands: they talk to the gateway at ``SSBG_URL`` with
  ``SSBG_API_KEY`` (``set``: a super_admin, with a TOTP code from ``SSBG_MFA_TOKEN`` or the
  prompt). Exit codes as every client command (:mod:`ssbg.cli.client`).
* ``release`` is a host command: it runs where the gateway runs, with its ``SSBG_``
  configuration, and writes to the database directly. It is the only way out of level 3
  (LOCKDOWN), which no API key can lift, so it must prove more than access to the database:
  it opens the key store with the key password (``SSBG_KEY_PASSWORD`` or a hidden prompt,
  never the development password file beside the keys) by decrypting the audit signing key
  and the integrity key, before anything is written. A wrong password changes nothing.
"""

import asyncio
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ssbg.cli.client import ClientFailure, Gateway, fail, out
from ssbg.cli.settings_loader import EXIT_USAGE, err, load_settings
from ssbg.domain.errors import InvalidStateTransition, KeyUnavailable, SsbgError
from ssbg.domain.incident import IncidentLevel

if TYPE_CHECKING:
    from datetime import datetime

    from ssbg.infrastructure.crypto.key_store import FileKeyStore
    from ssbg.services.incident_service import IncidentStatus
    from ssbg.settings import Settings

EXIT_REFUSED = 1
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why (3 characters or more; recorded in the audit log).")
]

app = typer.Typer(
    name="incident",
    help=(
        "The incident level (0 NORMAL, 1 ALERT, 2 QUARANTINE, 3 LOCKDOWN). "
        "show and set are client commands (SSBG_URL, SSBG_API_KEY); "
        "release runs on the gateway host with the key password."
    ),
    no_args_is_help=True,
)


# -- client commands -------------------------------------------------------------------------


@app.command("show")
def show(as_json: JsonOption = False) -> None:
    """Client: the effective level, why and since when, and the recent changes."""
    try:
        incident = Gateway.from_env("an admin (or super_admin)").data("GET", "/admin/incident")
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    _print_incident(incident["data"], as_json=as_json)


@app.command("set")
def set_level(
    level: Annotated[int, typer.Option("--level", min=0, max=3, help="0, 1, 2 or 3.")],
    reason: ReasonOption,
    as_json: JsonOption = False,
) -> None:
    """Client: set the level (super_admin, TOTP code from SSBG_MFA_TOKEN or the prompt).
    Any level up; down only below 3 — level 3 is lifted with `ssbg incident release`."""
    try:
        gateway = Gateway.from_env("a super_admin")
        incident = gateway.data("POST", "/admin/incident", body={"level": level, "reason": reason})
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    _print_incident(incident["data"], as_json=as_json)


def _print_incident(incident: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(incident))
        return
    out.print(f"Incident level [bold]{incident['level']} ({incident['name']})[/]")
    for name in ("reason", "changed_at", "changed_by", "last_alert_at", "auto_revert_at"):
        if incident.get(name) is not None:
            out.print(f"  {name}: {incident[name]}", soft_wrap=True)
    if incident["history"]:
        out.print("Recent changes (newest first):")
    for change in incident["history"]:
        cause = f"alert {change['alert_id']}" if change["alert_id"] else ""
        if change["actor_id"]:
            cause = f"by {change['actor_id']}"
        elif not cause:
            cause = "on the host"
        out.print(
            f"  {change['changed_at']}  {change['from_level']} → {change['to_level']}  "
            f"{cause}: {change['reason']}",
            soft_wrap=True,
        )


# -- host command ----------------------------------------------------------------------------


@app.command("release")
def release(
    level: Annotated[
        int, typer.Option("--level", min=0, max=2, help="The lower level: 0, 1 or 2.")
    ],
    reason: ReasonOption,
    as_json: JsonOption = False,
) -> None:
    """Host: lower the level on the gateway host — the only way out of 3 (LOCKDOWN).

    Reads the gateway's SSBG_ configuration and needs the key password (SSBG_KEY_PASSWORD,
    else a hidden prompt; on a development install without one, the password is in
    .generated-key-password in the key store). Audited INCIDENT_LEVEL_CHANGE, actor cli.
    Exit 0 lowered, 1 refused (wrong password, or not lower than the current level; nothing
    changed), 2 configuration or usage error.
    """
    from ssbg.infrastructure.log_config import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if len(reason.strip()) < 3:
        err.print("[red]--reason must say why (3 characters or more).[/]")
        raise typer.Exit(EXIT_USAGE)
    password = _key_password(settings)
    try:
        key_store = _open_key_store(settings, password)
    except KeyUnavailable as exc:
        err.print(
            "[red]release refused:[/] the key password does not open the key store at "
            f"{settings.resolved_keystore_dir}: {exc.message} Nothing was changed.",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_REFUSED) from None
    try:
        status = asyncio.run(_release(settings, key_store, IncidentLevel(level), reason))
    except InvalidStateTransition as exc:
        err.print(f"[red]release refused:[/] {exc.code}: {exc.message}", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from None
    except SsbgError as exc:
        err.print(f"[red]release failed:[/] {exc.code}: {exc.message}", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from None
    result = {
        "level": int(status.level),
        "name": status.level.name,
        "reason": status.reason,
        "changed_at": _iso(status.changed_at),
    }
    if as_json:
        print(json.dumps(result))
    else:
        out.print(f"Incident level is now [bold]{result['level']} ({result['name']})[/].")


def _key_password(settings: "Settings") -> str:
    """The configured password (environment or ``.env``, as ``ssbg serve`` reads it), else
    asked for without echo. Never the generated development password file: the person
    releasing a lockdown must know the password."""
    configured = settings.key_password.get_secret_value() if settings.key_password else ""
    if configured:  # empty means unset, as for the gateway itself
        return configured
    try:
        password: str = typer.prompt("Key password", hide_input=True, err=True)
    except typer.Abort:
        err.print("[red]Set SSBG_KEY_PASSWORD or run the command on a terminal.[/]")
        raise typer.Exit(EXIT_USAGE) from None
    return password


def _open_key_store(settings: "Settings", password: str) -> "FileKeyStore":
    """The key store, opened with ``password``: ``KeyUnavailable`` unless the password
    decrypts both the audit signing key and the integrity key (each guess costs the full
    PBKDF2 work). Reads only; creates nothing."""
    from ssbg.infrastructure.crypto.key_store import (
        AUDIT_SIGNING_NAME,
        INTEGRITY_FILE,
        FileKeyStore,
    )

    directory = settings.resolved_keystore_dir
    store = FileKeyStore(directory, password)
    if not store.has_private_key(AUDIT_SIGNING_NAME) or not (directory / INTEGRITY_FILE).is_file():
        err.print(
            f"[red]No initialised key store at {directory}[/] (run `ssbg init`, or set "
            "SSBG_KEYSTORE_DIR / SSBG_DATA_DIR as the gateway has them).",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_USAGE)
    store.load_private_key(AUDIT_SIGNING_NAME)
    store.integrity_key()
    return store


async def _release(
    settings: "Settings", key_store: "FileKeyStore", level: IncidentLevel, reason: str
) -> "IncidentStatus":
    from ssbg.services.container import build_services

    services = build_services(settings, key_store=key_store)
    try:
        return await services.incidents.release(level, reason)
    finally:
        await services.close()


def _iso(moment: "datetime | None") -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
