"""Client commands for policy records (SPEC §8): ``ssbg policies create|list|show|update``.

One command per route of ``/admin/policies``, with an option per field of the body (or the body
from a JSON file). They talk to the gateway at ``SSBG_URL`` with an admin's ``SSBG_API_KEY``
(see :mod:`ssbg.cli.client` for the environment, the TOTP prompt and the exit codes: 0 done,
1 the gateway refused, 2 usage or connection error). The gateway validates every field; its
``VALIDATION_ERROR`` (exit 1) names each one.
"""

import json
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ssbg.cli.client import ClientFailure, Gateway, fail, out, usage_error
from ssbg.domain.enums import Classification, PolicyEffect, PolicyOperation, Role

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
PolicyId = Annotated[UUID, typer.Argument(help="The policy's identifier (policy_id).")]
ROLE_HINT = "an admin (or super_admin)"
PATH = "/admin/policies"

app = typer.Typer(
    name="policies",
    help="Custom policy records, evaluated after the built-in rules (client: SSBG_URL, "
    "SSBG_API_KEY).",
    no_args_is_help=True,
)

# -- options shared by create and update ------------------------------------------------------

Name = Annotated[str | None, typer.Option("--name", help="Unique; letters, digits, ' ._:-'.")]
Description = Annotated[str | None, typer.Option("--description", help="What it is for.")]
Effect = Annotated[
    PolicyEffect | None,
    typer.Option("--effect", case_sensitive=False, help="deny, or require_mfa."),
]
Priority = Annotated[
    int | None, typer.Option("--priority", help="Lower is evaluated first (create: 100).")
]
Active = Annotated[
    bool | None,
    typer.Option("--active/--inactive", help="Whether it is evaluated (create: active)."),
]
Operations = Annotated[
    list[PolicyOperation] | None,
    typer.Option("--operation", case_sensitive=False, help="Rule: an operation (repeat)."),
]
Roles = Annotated[
    list[Role] | None,
    typer.Option("--role", case_sensitive=False, help="Rule: a caller's role (repeat)."),
]
Classifications = Annotated[
    list[Classification] | None,
    typer.Option("--classification", case_sensitive=False, help="Rule: a classification (repeat)."),
]
SourceSystems = Annotated[
    list[str] | None,
    typer.Option("--source-system", help="Rule: a source system glob, e.g. 'finance-*' (repeat)."),
]
Departments = Annotated[
    list[str] | None,
    typer.Option("--department", help="Rule: the caller key's department (repeat)."),
]
Hours = Annotated[
    str | None, typer.Option("--hours", help="Rule: UTC hours it applies in, e.g. 18-24.")
]
FromFile = Annotated[
    Path | None,
    typer.Option(
        "--from-file",
        help="The request body as a JSON object, instead of the field options.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]


def _rule(
    operations: list[PolicyOperation] | None,
    roles: list[Role] | None,
    classifications: list[Classification] | None,
    source_systems: list[str] | None,
    departments: list[str] | None,
    hours: str | None,
) -> dict[str, Any]:
    """The rule options given (a rule field left out matches everything)."""
    rule = {
        "operations": [o.value for o in operations] if operations else None,
        "roles": [r.value for r in roles] if roles else None,
        "classifications": [c.value for c in classifications] if classifications else None,
        "source_systems": source_systems or None,
        "departments": departments or None,
        "hours": hours,
    }
    return {k: v for k, v in rule.items() if v is not None}


def _body(from_file: Path | None, fields: dict[str, Any]) -> dict[str, Any]:
    """The body from ``--from-file`` or from the options given; never both."""
    given = {k: v for k, v in fields.items() if v is not None and v != {}}
    if from_file is None:
        return given
    if given:
        raise usage_error(f"--from-file is the whole body: leave out {', '.join(_flags(given))}.")
    try:
        body = json.loads(from_file.read_bytes())
    except OSError as error:
        raise usage_error(f"Cannot read {from_file}: {error.strerror or error}.") from None
    except ValueError:
        raise usage_error(f"{from_file} is not JSON.") from None
    if not isinstance(body, dict):
        raise usage_error(f"{from_file} must hold one JSON object (the request body).")
    return body


_FLAGS = {"is_active": "--active/--inactive", "rule": "the rule options"}


def _flags(fields: dict[str, Any]) -> list[str]:
    return [_FLAGS.get(name, f"--{name}") for name in fields]


def _fields(
    name: str | None,
    description: str | None,
    effect: PolicyEffect | None,
    priority: int | None,
    is_active: bool | None,
    rule: dict[str, Any],
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "effect": effect.value if effect else None,
        "priority": priority,
        "is_active": is_active,
        "rule": rule,
    }


def _print_policy(policy: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(policy))
        return
    table = Table.grid(padding=(0, 2))
    for name, value in policy.items():
        shown = json.dumps(value) if isinstance(value, dict) else value
        table.add_row(f"[bold]{name}[/]", "" if shown is None else str(shown))
    out.print(table)


RULE_FIELDS = ("operations", "roles", "classifications", "source_systems", "departments", "hours")


def _rule_summary(rule: dict[str, Any]) -> str:
    """One line, the fields in a fixed order (PostgreSQL's JSONB keeps no key order)."""
    names = [*(n for n in RULE_FIELDS if n in rule), *sorted(set(rule) - set(RULE_FIELDS))]
    parts = [
        f"{name}: {','.join(map(str, value)) if isinstance(value, list) else value}"
        for name, value in ((name, rule[name]) for name in names)
    ]
    return "; ".join(parts) or "(matches everything)"


# -- commands ---------------------------------------------------------------------------------


@app.command("create")
def create(
    name: Name = None,
    description: Description = None,
    effect: Effect = None,
    priority: Priority = None,
    is_active: Active = None,
    operations: Operations = None,
    roles: Roles = None,
    classifications: Classifications = None,
    source_systems: SourceSystems = None,
    departments: Departments = None,
    hours: Hours = None,
    from_file: FromFile = None,
    as_json: JsonOption = False,
) -> None:
    """Create a policy record (admin; audited POLICY_CREATE). Needs --name and --effect (or
    --from-file); rule options left out match everything, so a rule with none matches every
    request of every operation."""
    rule = _rule(operations, roles, classifications, source_systems, departments, hours)
    try:
        body = _body(from_file, _fields(name, description, effect, priority, is_active, rule))
        if from_file is None:
            if name is None or effect is None:
                raise usage_error("Give --name and --effect (or the whole body with --from-file).")
            body.setdefault("rule", {})
        policy = Gateway.from_env(ROLE_HINT).data("POST", PATH, body=body)["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if not as_json:
        out.print(f"Created policy {policy['policy_id']} ({policy['name']}).", soft_wrap=True)
    _print_policy(policy, as_json=as_json)


@app.command("list")
def list_policies(as_json: JsonOption = False) -> None:
    """Every policy record in evaluation order (priority, then name). --json prints the JSON
    list of policy objects."""
    try:
        policies = Gateway.from_env(ROLE_HINT).data("GET", PATH)["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if as_json:
        print(json.dumps(policies))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("policy_id", no_wrap=True, min_width=36)
    table.add_column("priority", justify="right", no_wrap=True)
    table.add_column("name", overflow="fold")
    for column in ("effect", "active"):
        table.add_column(column, no_wrap=True)
    table.add_column("rule", overflow="fold")
    for policy in policies:
        table.add_row(
            policy["policy_id"],
            str(policy["priority"]),
            policy["name"],
            policy["effect"],
            "yes" if policy["is_active"] else "no",
            _rule_summary(policy["rule"]),
        )
    # Piped output is not cut to 80 columns: identifiers must stay whole.
    (out if out.is_terminal else Console(width=200)).print(table)


@app.command("show")
def show(policy_id: PolicyId, as_json: JsonOption = False) -> None:
    """One policy record, with who created and last changed it."""
    try:
        policy = Gateway.from_env(ROLE_HINT).data("GET", f"{PATH}/{policy_id}")["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    _print_policy(policy, as_json=as_json)


@app.command("update")
def update(
    policy_id: PolicyId,
    name: Name = None,
    description: Description = None,
    effect: Effect = None,
    priority: Priority = None,
    is_active: Active = None,
    operations: Operations = None,
    roles: Roles = None,
    classifications: Classifications = None,
    source_systems: SourceSystems = None,
    departments: Departments = None,
    hours: Hours = None,
    from_file: FromFile = None,
    as_json: JsonOption = False,
) -> None:
    """Change the fields given (admin; audited POLICY_UPDATE). Rule options change those parts
    of the rule and keep the rest (the command reads the rule first); --from-file is sent as
    the PATCH body as it is, where a rule replaces the whole rule."""
    rule = _rule(operations, roles, classifications, source_systems, departments, hours)
    try:
        body = _body(from_file, _fields(name, description, effect, priority, is_active, rule))
        if not body:
            raise usage_error("Nothing to change: give a field option or --from-file.")
        gateway = Gateway.from_env(ROLE_HINT)
        if from_file is None and rule:
            current = gateway.data("GET", f"{PATH}/{policy_id}")["data"]
            body["rule"] = {**current["rule"], **rule}
        policy = gateway.data("PATCH", f"{PATH}/{policy_id}", body=body)["data"]
    except ClientFailure as failure:
        fail(failure, as_json=as_json)
    if not as_json:
        out.print(f"Updated policy {policy['policy_id']} ({policy['name']}).", soft_wrap=True)
    _print_policy(policy, as_json=as_json)
