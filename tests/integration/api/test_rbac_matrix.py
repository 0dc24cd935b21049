"""Every route of the foundation, called by every role: allowed roles pass, the rest get
403 ``FORBIDDEN_ROLE`` and leave an ``AUTHZ_DENY`` entry."""

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ssbg.api.app import create_app
from ssbg.api.paths import API_PREFIX
from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.backups import upload
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.restores import request_restore

ALL = set(Role)
ADMINS = {Role.ADMIN, Role.SUPER_ADMIN}
REVIEWERS = {Role.AUDITOR, Role.ADMIN, Role.SUPER_ADMIN}
SUPER = {Role.SUPER_ADMIN}
BACKUP_WRITERS = {Role.OPERATOR, Role.ADMIN, Role.SUPER_ADMIN}


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    allowed: set[Role]
    body: dict[str, Any] | None = None
    mfa: bool = False
    upload: bool = False  # send a small raw backup payload instead of a JSON body
    restore_token: bool = False  # send the caller's download token
    ok: frozenset[int] = frozenset({200, 201})  # what an allowed role gets


CALLS = [
    Call("GET", "/me", ALL),
    Call("GET", "/health/detailed", ADMINS),
    Call("POST", "/admin/api-keys", SUPER, {"role": "operator", "description": "made in test"}),
    Call("GET", "/admin/api-keys", SUPER),
    Call("GET", "/admin/api-keys/{key_id}", SUPER),
    Call("DELETE", "/admin/api-keys/{key_id}", SUPER),
    Call(
        "POST",
        "/admin/policies",
        ADMINS,
        {"name": "p-{n}", "effect": "deny", "rule": {"operations": ["backup"]}},
    ),
    Call("GET", "/admin/policies", ADMINS),
    Call("GET", "/admin/policies/{policy_id}", ADMINS),
    Call("PATCH", "/admin/policies/{policy_id}", ADMINS, {"priority": 7}),
    Call("GET", "/audit/entries", REVIEWERS),
    Call("GET", "/audit/checkpoints", REVIEWERS),
    Call("POST", "/audit/validate", REVIEWERS, {}),
    Call("GET", "/audit/export", REVIEWERS),
    Call("POST", "/backups", BACKUP_WRITERS, upload=True),
    Call("GET", "/backups", ALL),
    Call("GET", "/backups/{backup_id}", ALL),
    Call("GET", "/backups/{backup_id}/status", ALL),
    Call("DELETE", "/backups/{backup_id}", ADMINS),
    Call(
        "POST", "/restores", ADMINS, {"backup_id": "{backup_id}", "justification": "matrix test!"}
    ),
    Call("GET", "/restores/{restore_id}", ADMINS),
    # The target restore is COMPLETED, not pending: an allowed role gets past the role check
    # and is refused by the state machine instead.
    Call("POST", "/restores/{restore_id}/approve", ADMINS, mfa=True, ok=frozenset({409})),
    Call(
        "POST",
        "/restores/{restore_id}/reject",
        ADMINS,
        {"reason": "matrix test"},
        mfa=True,
        ok=frozenset({409}),
    ),
    Call("POST", "/restores/{restore_id}/token", ADMINS),
    Call("GET", "/restores/{restore_id}/download", ADMINS, restore_token=True),
    Call("GET", "/admin/incident", ADMINS),
    Call("POST", "/admin/incident", SUPER, {"level": 1, "reason": "matrix test"}, mfa=True),
]
PUBLIC = {("GET", "/health"), ("GET", "/health/ready")}


def test_the_matrix_covers_every_route(services: Services) -> None:
    paths = create_app(services=services).openapi()["paths"]
    routes = {
        (method.upper(), path.removeprefix(API_PREFIX))
        for path, operations in paths.items()
        for method in operations
    }
    covered = {(call.method, call.template) for call in CALLS} | PUBLIC
    assert len(routes) > len(PUBLIC)
    assert routes <= covered, f"routes without an RBAC test: {sorted(routes - covered)}"


@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.value)
@pytest.mark.parametrize("call", CALLS, ids=lambda call: f"{call.method} {call.template}")
async def test_role_matrix(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
    call: Call,
    role: Role,
) -> None:
    caller = await create_api_key(services, role)
    target = await create_api_key(services, Role.OPERATOR)
    policy = await client.post(
        "/admin/policies",
        headers=headers(bootstrap_key),
        json={"name": "target", "effect": "deny", "is_active": False, "rule": {}},
    )
    # Operators see only their own backups, so the target backup is the caller's when it may
    # create one (a 404 for someone else's backup is visibility, not a role decision).
    owner = caller if role in BACKUP_WRITERS else bootstrap_key
    backup = await upload(client, owner, b"matrix payload", mode="raw")
    assert backup.status_code == 201, backup.text
    backup_id = backup.json()["data"]["backup_id"]
    # A restore requester only sees its own restores' tokens and downloads.
    requester = caller if role in ADMINS else bootstrap_key
    restore = await request_restore(client, requester, backup_id)
    assert restore.status_code == 201, restore.text
    restore_data = restore.json()["data"]
    names = {
        "key_id": target.record.id,
        "policy_id": policy.json()["data"]["policy_id"],
        "backup_id": backup_id,
        "restore_id": restore_data["restore_id"],
        "n": role.value,
    }
    path = call.template.format(**names)
    body = (
        {k: (v.format(**names) if isinstance(v, str) else v) for k, v in call.body.items()}
        if call.body
        else None
    )
    denials_before = len(await audit_entries(services.db, "AUTHZ_DENY"))

    sent = (
        headers(caller, totp_at=clock.now()) if call.mfa and caller.totp_secret else headers(caller)
    )
    if call.restore_token:
        sent["X-Restore-Token"] = restore_data["download"]["token"]
    if call.upload:
        response = await upload(client, caller, b"matrix payload", mode="raw")
    else:
        response = await client.request(call.method, path, headers=sent, json=body)

    denials = await audit_entries(services.db, "AUTHZ_DENY")
    if role in call.allowed:
        assert response.status_code in call.ok, response.text
        assert len(denials) == denials_before
    else:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "FORBIDDEN_ROLE"
        assert len(denials) == denials_before + 1
        assert denials[-1].result == "DENIED"
        assert denials[-1].actor_id == caller.record.id
        assert denials[-1].actor_role == role.value
