"""Every route of the foundation, called by a role it allows and by a role it refuses: the
allowed role gets past the role check, the refused one gets 403 ``FORBIDDEN_ROLE`` and leaves
an ``AUTHZ_DENY`` entry.

Which role holds which permission is tested for every role and every permission in
``tests/unit/domain/test_permissions.py``. Here each route is called by the roles at the edge of
its allowed set: the first role (in the order operator, auditor, admin, super_admin) it allows
and the last one it refuses, if any. The calls share one gateway, its keys, one backup and one
completed restore (module scope); a call that would change what the others need gets a target
of its own (the backup it deletes) or is undone after it (the incident level it raises).
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from ssbg.api.app import create_app
from ssbg.api.paths import API_PREFIX
from ssbg.domain.enums import Role
from ssbg.domain.incident import IncidentLevel
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from tests.conftest import TEST_KEY_PASSWORD, gateway_settings
from tests.support.audit import audit_entries
from tests.support.backups import upload
from tests.support.clock import FixedClock
from tests.support.databases import SqliteTemplate
from tests.support.factories import create_api_key, headers
from tests.support.keys import copy_key_store
from tests.support.restores import backup_of, request_restore, set_incident_level

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALL = set(Role)
ADMINS = {Role.ADMIN, Role.SUPER_ADMIN}
REVIEWERS = {Role.AUDITOR, Role.ADMIN, Role.SUPER_ADMIN}
SUPER = {Role.SUPER_ADMIN}
BACKUP_WRITERS = {Role.OPERATOR, Role.ADMIN, Role.SUPER_ADMIN}


OK_409 = frozenset({200, 409})


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    allowed: set[Role]
    body: dict[str, Any] | None = None
    mfa: bool = False
    upload: bool = False  # send a small raw backup payload instead of a JSON body
    restore_token: bool = False  # send a valid download token of the shared restore
    own_backup: bool = False  # {backup_id} is a backup made for this call (it is changed)
    ok: frozenset[int] = frozenset({200, 201})  # what an allowed role gets

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


CALLS = [
    Call("GET", "/me", ALL),
    Call("GET", "/health/detailed", ADMINS),
    Call("POST", "/admin/api-keys", SUPER, {"role": "operator", "description": "made in test"}),
    Call(
        "POST",
        "/admin/api-keys",
        SUPER,
        {"role": "super_admin", "description": "second super_admin"},
        mfa=True,
    ),
    Call("GET", "/admin/api-keys", SUPER),
    Call("GET", "/admin/api-keys/{key_id}", SUPER),
    Call("DELETE", "/admin/api-keys/{key_id}", SUPER),
    Call(
        "POST",
        "/admin/policies",
        ADMINS,
        # Inactive: an active deny record would refuse the other calls' uploads.
        {"name": "p-{n}", "effect": "deny", "is_active": False, "rule": {"operations": ["backup"]}},
    ),
    Call("GET", "/admin/policies", ADMINS),
    Call("GET", "/admin/policies/{policy_id}", ADMINS),
    Call("PATCH", "/admin/policies/{policy_id}", ADMINS, {"priority": 7}),
    Call(
        "POST",
        "/admin/retention-rules",
        ADMINS,
        {"name": "r-{n}", "source_systems": ["nothing-matches"], "keep_last": 1},
    ),
    Call("GET", "/admin/retention-rules", ADMINS),
    Call("GET", "/admin/retention-rules/{rule_id}", ADMINS),
    Call("PATCH", "/admin/retention-rules/{rule_id}", ADMINS, {"keep_last": 2}),
    Call("POST", "/admin/retention/apply", ADMINS, {"dry_run": True}),
    Call("GET", "/audit/entries", REVIEWERS),
    Call("GET", "/audit/checkpoints", REVIEWERS),
    Call("POST", "/audit/validate", REVIEWERS, {}),
    Call("GET", "/audit/export", REVIEWERS),
    Call("POST", "/backups", BACKUP_WRITERS, upload=True),
    Call("GET", "/backups", ALL),
    Call("GET", "/backups/{backup_id}", ALL),
    Call("GET", "/backups/{backup_id}/status", ALL),
    Call("DELETE", "/backups/{backup_id}", ADMINS, own_backup=True),
    Call("POST", "/backups/{backup_id}/verify", ADMINS),
    # The backup is ACTIVE: past the role and MFA checks, refused by the state machine.
    Call(
        "POST",
        "/backups/{backup_id}/release",
        ADMINS,
        {"reason": "matrix test release"},
        mfa=True,
        ok=frozenset({409}),
    ),
    # The fixture's job is still running: past the role check, refused as a second job.
    Call("POST", "/admin/verify", ADMINS, {}, ok=frozenset({409})),
    Call("GET", "/admin/verify/{job_id}", ADMINS),
    Call(
        "POST", "/backups/{backup_id}/hold", ADMINS, {"reason": "matrix"}, mfa=True, own_backup=True
    ),
    # The call's own backup is not held: past the role and MFA checks, refused as NOT_HELD.
    Call(
        "DELETE",
        "/backups/{backup_id}/hold",
        ADMINS,
        {"reason": "matrix"},
        mfa=True,
        own_backup=True,
        ok=frozenset({409}),
    ),
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
    Call("GET", "/admin/keys", ADMINS),
    Call("GET", "/admin/keys/{version}", ADMINS),
    Call("POST", "/admin/keys/rotate", SUPER, {"reason": "matrix test"}, mfa=True),
    # Before any rotation P-001 is the active version (409); after one, it is rewrapped.
    Call(
        "POST",
        "/admin/keys/rewrap",
        SUPER,
        {"from_version": "P-001", "reason": "matrix test"},
        mfa=True,
        ok=frozenset({200, 409}),
    ),
    # A wrong confirmation: past the role and MFA checks, refused before anything changes.
    Call(
        "POST",
        "/admin/keys/{version}/crypto-shred",
        SUPER,
        {"confirmation": "no", "reason": "matrix test"},
        mfa=True,
        ok=frozenset({422}),
    ),
    Call("GET", "/admin/alerts", ADMINS),
    Call("GET", "/admin/alerts/{alert_id}", ADMINS),
    # Steps of the fixture's M9 alert: 409 once another call has moved it past this one.
    *(
        Call("POST", f"/admin/alerts/{{alert_id}}/{step}", ADMINS, {"note": "matrix"}, ok=OK_409)
        for step in ("acknowledge", "investigate", "resolve")
    ),
    Call("GET", "/admin/incident", ADMINS),
    Call("POST", "/admin/incident", SUPER, {"level": 1, "reason": "matrix test"}, mfa=True),
]
PUBLIC = {("GET", "/health"), ("GET", "/health/ready")}


def first_allowed(call: Call) -> Role:
    return next(role for role in Role if role in call.allowed)


def last_refused(call: Call) -> Role | None:
    return next((role for role in reversed(Role) if role not in call.allowed), None)


ALLOWED = [
    pytest.param(call, first_allowed(call), id=f"{call}-{first_allowed(call)}") for call in CALLS
]
REFUSED = [
    pytest.param(call, role, id=f"{call}-{role}")
    for call in CALLS
    if (role := last_refused(call)) is not None
]


@dataclass(frozen=True)
class Gateway:
    services: Services
    client: httpx.AsyncClient
    clock: FixedClock
    keys: dict[Role, IssuedApiKey]  # one key per role; the backup is the operator's
    # what the templates name: key_id, policy_id, backup_id, restore_id, rule_id, ...
    names: dict[str, str]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: SqliteTemplate,
    shared_key_store: FileKeyStore,
) -> AsyncIterator[Gateway]:
    directory: Path = tmp_path_factory.mktemp("rbac")
    # The key routes rotate: a key store of this module's own.
    key_store = copy_key_store(shared_key_store, directory / "keys", TEST_KEY_PASSWORD)
    settings = gateway_settings(sqlite_template.fresh(directory), directory, key_store)
    clock = FixedClock()
    services = build_services(settings, clock=clock, key_store=key_store)
    try:
        bootstrap = (await services.bootstrap.initialize()).issued
        assert bootstrap is not None
        keys = {role: await create_api_key(services, role) for role in Role}
        revocable = await create_api_key(services, Role.OPERATOR, description="to revoke")
        transport = httpx.ASGITransport(
            app=create_app(services=services),
            client=("192.0.2.10", 50000),
            raise_app_exceptions=False,
        )
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ssbg.test/api/v1"
        ) as http:
            # Operators see only their own backups (another's is a 404, visibility rather than
            # a role decision), so the backup is the operator's; admins see every backup.
            backup_id = await backup_of(http, keys[Role.OPERATOR], b"matrix payload")
            restore = await request_restore(http, keys[Role.ADMIN], backup_id)
            assert restore.status_code == 201, restore.text
            assert restore.json()["data"]["status"] == "COMPLETED"
            # A policy change raises alert M9 and incident level 1 (see ``send``).
            policy = await http.post(
                "/admin/policies",
                headers=headers(bootstrap),
                json={"name": "target", "effect": "deny", "is_active": False, "rule": {}},
            )
            assert policy.status_code == 201, policy.text
            job = await http.post("/admin/verify", headers=headers(keys[Role.ADMIN]))
            assert job.status_code == 202, job.text
            names = {
                "job_id": job.json()["data"]["job_id"],
                "key_id": str(revocable.record.id),
                "policy_id": policy.json()["data"]["policy_id"],
                "backup_id": backup_id,
                "restore_id": restore.json()["data"]["restore_id"],
                "version": "P-001",
                "alert_id": (await http.get("/admin/alerts", headers=headers(bootstrap))).json()[
                    "data"
                ][0]["alert_id"],
            }
            rule = await http.post(
                "/admin/retention-rules",
                headers=headers(bootstrap),
                json={"name": "target", "source_systems": ["nothing-matches"], "keep_last": 1},
            )
            assert rule.status_code == 201, rule.text
            names["rule_id"] = rule.json()["data"]["rule_id"]
            yield Gateway(services, http, clock, keys, names)
    finally:
        await services.close()


async def send(gateway: Gateway, call: Call, role: Role) -> httpx.Response:
    client, caller = gateway.client, gateway.keys[role]
    # Each call at incident level 0: level 1, raised by alert M9 when an earlier call changed
    # a policy, reverts half an hour after its last alert.
    gateway.clock.advance(minutes=31)
    if call.upload:
        return await upload(client, caller, b"matrix payload", mode="raw")
    names = {**gateway.names, "n": role.value}
    if call.own_backup:
        names["backup_id"] = await backup_of(client, gateway.keys[Role.OPERATOR], b"doomed")
    sent = headers(caller)
    if call.mfa and caller.totp_secret:
        # A TOTP step of its own for every call: the same key's code is accepted once.
        sent = headers(caller, totp_at=gateway.clock.advance(seconds=30))
    if call.restore_token:
        # The restore's requester collects a fresh token (another call may have replaced one).
        collected = await client.post(
            f"/restores/{names['restore_id']}/token", headers=headers(gateway.keys[Role.ADMIN])
        )
        assert collected.status_code == 201, collected.text
        sent["X-Restore-Token"] = collected.json()["data"]["download"]["token"]
    body = (
        {k: (v.format(**names) if isinstance(v, str) else v) for k, v in call.body.items()}
        if call.body is not None
        else None
    )
    return await client.request(call.method, call.template.format(**names), headers=sent, json=body)


async def test_the_matrix_covers_every_route(gateway: Gateway) -> None:
    paths = create_app(services=gateway.services).openapi()["paths"]
    routes = {
        (method.upper(), path.removeprefix(API_PREFIX))
        for path, operations in paths.items()
        for method in operations
    }
    covered = {(call.method, call.template) for call in CALLS} | PUBLIC
    assert len(routes) > len(PUBLIC)
    assert routes <= covered, f"routes without an RBAC test: {sorted(routes - covered)}"


@pytest.mark.parametrize(("call", "role"), ALLOWED)
async def test_an_allowed_role_gets_past_the_role_check(
    gateway: Gateway, call: Call, role: Role
) -> None:
    denials_before = len(await audit_entries(gateway.services.db, "AUTHZ_DENY"))

    try:
        response = await send(gateway, call, role)
    finally:
        if call.template == "/admin/incident" and call.method == "POST":
            # Back to NORMAL, so no other call runs at a raised level.
            await set_incident_level(
                gateway.services, gateway.keys[Role.SUPER_ADMIN], IncidentLevel.NORMAL
            )

    assert response.status_code in call.ok, response.text
    assert len(await audit_entries(gateway.services.db, "AUTHZ_DENY")) == denials_before


@pytest.mark.parametrize(("call", "role"), REFUSED)
async def test_a_refused_role_gets_forbidden_role_and_an_authz_deny_entry(
    gateway: Gateway, call: Call, role: Role
) -> None:
    denials_before = len(await audit_entries(gateway.services.db, "AUTHZ_DENY"))

    response = await send(gateway, call, role)

    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "FORBIDDEN_ROLE"
    denials = await audit_entries(gateway.services.db, "AUTHZ_DENY")
    assert len(denials) == denials_before + 1
    assert denials[-1].result == "DENIED"
    assert denials[-1].actor_id == gateway.keys[role].record.id
    assert denials[-1].actor_role == role.value
