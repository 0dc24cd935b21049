"""The console's Policies pages (admin+, as ``/admin/policies``; SPEC §8, §13.5): list, detail,
create and update, each through the same service method and permission check as the API, so
the audit log records it exactly as over the API. A form is the API's body — checked by the
API's own ``PolicyCreate`` / ``PolicyPatch`` — with the rule fields of ``ssbg policies``: lists
of operations, roles and classifications (boxes), source-system globs and departments (space or
comma separated) and UTC hours; a rule field left empty matches everything. An update sends
every field, so its rule replaces the whole rule (as ``PATCH`` with a ``rule`` does)."""

from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from ssbg.api.dependencies import ServicesDep, authorize_actor
from ssbg.api.errors import record_error
from ssbg.api.schemas.policies import PolicyCreate, PolicyOut, PolicyPatch
from ssbg.console.dependencies import ConsoleCaller, FormCallerDep, PageCaller, page
from ssbg.console.forms import as_request, list_of
from ssbg.console.rendering import ConsoleRoute, render
from ssbg.domain.enums import Classification, PolicyEffect, PolicyOperation, Role
from ssbg.domain.errors import Conflict, NotFound, ValidationFailed
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission
from ssbg.services.container import Services

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

POLICIES_PATH = "/console/policies"
PolicyAdmin = Annotated[PageCaller, Depends(page(Permission.POLICY_MANAGE))]
Choices = Annotated[list[str] | None, Form()]
Text = Annotated[str, Form(max_length=4000)]


@dataclass(frozen=True, slots=True)
class PolicyForm:
    """A policy form as posted (or as a stored policy fills it)."""

    name: str = ""
    description: str = ""
    effect: str = PolicyEffect.DENY.value
    priority: str = "100"
    is_active: bool = True
    operations: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    classifications: list[str] = field(default_factory=list)
    source_systems: str = ""
    departments: str = ""
    hours: str = ""

    @classmethod
    def of(cls, policy: PolicyOut) -> "PolicyForm":
        rule = policy.rule
        return cls(
            name=policy.name,
            description=policy.description,
            effect=policy.effect.value,
            priority=str(policy.priority),
            is_active=policy.is_active,
            operations=list(rule.get("operations", [])),
            roles=list(rule.get("roles", [])),
            classifications=list(rule.get("classifications", [])),
            source_systems=" ".join(rule.get("source_systems", [])),
            departments=" ".join(rule.get("departments", [])),
            hours=rule.get("hours", ""),
        )

    def body(self) -> dict[str, Any]:
        """The API's JSON body: every field; an empty rule field left out (matches all)."""
        rule: dict[str, Any] = {
            "operations": self.operations,
            "roles": self.roles,
            "classifications": self.classifications,
            "source_systems": list_of(self.source_systems),
            "departments": list_of(self.departments),
            "hours": self.hours.strip(),
        }
        try:
            priority: Any = int(self.priority.strip())
        except ValueError:
            priority = self.priority  # refused by the schema, naming the field
        return {
            "name": self.name.strip(),
            "description": self.description.strip(),
            "effect": self.effect,
            "priority": priority,
            "is_active": self.is_active,
            "rule": {name: value for name, value in rule.items() if value},
        }


async def policy_form(
    name: Annotated[str, Form(max_length=200)],
    effect: Annotated[str, Form(max_length=20)],
    priority: Annotated[str, Form(max_length=20)],
    description: Text = "",
    is_active: Annotated[str | None, Form(max_length=10)] = None,
    operations: Choices = None,
    roles: Choices = None,
    classifications: Choices = None,
    source_systems: Text = "",
    departments: Text = "",
    hours: Annotated[str, Form(max_length=100)] = "",
) -> PolicyForm:
    return PolicyForm(
        name=name,
        description=description,
        effect=effect,
        priority=priority,
        is_active=is_active == "yes",
        operations=operations or [],
        roles=roles or [],
        classifications=classifications or [],
        source_systems=source_systems,
        departments=departments,
        hours=hours,
    )


FormDep = Annotated[PolicyForm, Depends(policy_form)]


def _policy_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("Policy not found.") from None


def _choices() -> dict[str, Any]:
    return {
        "effects": list(PolicyEffect),
        "all_operations": list(PolicyOperation),
        "all_roles": list(Role),
        "all_classifications": list(Classification),
    }


async def _list_context(services: Services, caller: PageCaller) -> dict[str, Any]:
    policies = await services.policies.list_policies()
    return {
        **caller.layout(POLICIES_PATH),
        **_choices(),
        "title": "Policies",
        "policies": [PolicyOut.of(policy) for policy in policies],
        "form": PolicyForm(),
        "refusal": None,
    }


async def _detail_context(
    services: Services, caller: PageCaller, policy_id: UUID
) -> dict[str, Any]:
    policy = PolicyOut.of(await services.policies.get_policy(policy_id))
    return {
        **caller.layout(POLICIES_PATH),
        **_choices(),
        "title": f"Policy {policy.name}",
        "policy": policy,
        "form": PolicyForm.of(policy),
        "refusal": None,
    }


@router.get("/policies")
async def policies_page(request: Request, services: ServicesDep, caller: PolicyAdmin) -> Response:
    """Every policy in evaluation order, as ``GET /admin/policies``; the create form."""
    return render(request, "policies.html", await _list_context(services, caller))


@router.get("/policies/{policy_id}")
async def policy_page(
    request: Request, policy_id: str, services: ServicesDep, caller: PolicyAdmin
) -> Response:
    context = await _detail_context(services, caller, _policy_id(policy_id))
    return render(request, "policy.html", context)


async def _admin(services: Services, caller: ConsoleCaller) -> Actor:
    """The API's ``require(Permission.POLICY_MANAGE)``."""
    return await authorize_actor(
        caller.session.authenticated, services, caller.context, Permission.POLICY_MANAGE
    )


async def _refused(
    request: Request,
    error: ValidationFailed | Conflict,
    template: str,
    context: dict[str, Any],
    form: PolicyForm,
) -> Response:
    """The page again, the form as filled, with the refusal (recorded as the API does)."""
    await record_error(request, error)
    filled = {**context, "form": form, "refusal": error}
    return render(request, template, filled, status=error.status)


@router.post("/policies")
async def create_policy(
    request: Request, services: ServicesDep, caller: FormCallerDep, form: FormDep
) -> Response:
    """``services.policies.create_policy``, as ``POST /admin/policies``."""
    actor = await _admin(services, caller)
    try:
        body = as_request(PolicyCreate, form.body())
        policy = await services.policies.create_policy(actor, body.to_request())
    except (ValidationFailed, Conflict) as error:
        context = await _list_context(services, PageCaller(caller, actor))
        return await _refused(request, error, "policies.html", context, form)
    return RedirectResponse(f"{POLICIES_PATH}/{policy.id}", status_code=303)


@router.post("/policies/{policy_id}")
async def update_policy(
    request: Request, policy_id: str, services: ServicesDep, caller: FormCallerDep, form: FormDep
) -> Response:
    """``services.policies.update_policy``, as ``PATCH /admin/policies/{id}`` with every
    field."""
    parsed = _policy_id(policy_id)
    actor = await _admin(services, caller)
    try:
        body = as_request(PolicyPatch, form.body())
        await services.policies.update_policy(actor, parsed, body.to_changes())
    except (ValidationFailed, Conflict) as error:
        context = await _detail_context(services, PageCaller(caller, actor), parsed)
        return await _refused(request, error, "policy.html", context, form)
    return RedirectResponse(f"{POLICIES_PATH}/{parsed}", status_code=303)
