"""The ``ssbg`` command."""

import typer

from ssbg.cli import (
    alert_commands,
    api_key_commands,
    audit_commands,
    backup_commands,
    incident_commands,
    key_commands,
    policy_commands,
    recover_command,
    restore_command,
    retention_commands,
    server_commands,
    verify_commands,
)

app = typer.Typer(
    name="ssbg",
    help="Secure Sovereign Backup Gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(server_commands.init)
app.command()(server_commands.serve)
app.command()(server_commands.migrate)
app.add_typer(audit_commands.app, name="audit")
app.add_typer(key_commands.app, name="keys")
app.command()(recover_command.recover)
app.command()(backup_commands.backup)
backup_commands.app.command("verify")(verify_commands.verify)
backup_commands.app.command("release")(verify_commands.release)
app.add_typer(backup_commands.app, name="backups")
backup_commands.app.command("hold")(retention_commands.hold)
backup_commands.app.command("unhold")(retention_commands.unhold)
app.add_typer(retention_commands.app, name="retention")
app.command()(restore_command.restore)
app.add_typer(alert_commands.app, name="alerts")
app.add_typer(incident_commands.app, name="incident")
app.add_typer(api_key_commands.app, name="api-keys")
app.add_typer(policy_commands.app, name="policies")


def main() -> None:
    app()
