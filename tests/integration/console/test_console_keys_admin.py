"""The console's Keys page over HTTP: the inventory as ``GET /admin/keys``, what each role may
see and do, the CSRF refusal on every new form, the TOTP code and the typed confirmation the
actions need, held backups blocking a shred, and that each action is the API's own — the same
audit entries as the same action over the API."""

import re
from typing import Any

import httpx
import pytest

from ssbg.domain.enums import KeyVersionStatus, Role
from ssbg.domain.incident import IncidentLevel
from ssbg.infrastructure.crypto.audit_signing import public_key_from_pem
from ssbg.infrastructure.crypto.certificates import verify_certificate
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME
from ssbg.infrastructure.db.models import AuditLogEntry
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries, head_sequence
from tests.support.clock import FixedClock
from tests.support.console import assert_csp_clean, fresh_totp, signed_in
from tests.support.factories import create_api_key, headers
from tests.support.keys import rewrap, rotate, shred, with_mfa
from tests.support.restores import backup_of, set_incident_level
from tests.support.retention import place_hold

pytestmark = pytest.mark.own_key_store


def _comparable(entry: AuditLogEntry) -> dict[str, Any]:
    """What must be the same between the console's entry and the API's for one action (the
    key version or backup acted on differs: the API and the console each act on their own)."""
    return {
        "action": entry.action,
        "actor_id": entry.actor_id,
        "actor_role": entry.actor_role,
        "resource": re.sub(r"P-\d+|[0-9a-f-]{36}", "<id>", entry.resource),
        "result": entry.result,
        "source_ip": entry.source_ip,
        "details": sorted(entry.details),
    }


async def _entries_after(services: Services, sequence: int) -> list[AuditLogEntry]:
    return [e for e in await audit_entries(services.db) if e.sequence_number > sequence]


async def _status(services: Services, version: str) -> KeyVersionStatus:
    return (await services.keys.get_key(version)).record.status


@pytest.mark.both_backends
async def test_rotate_rewrap_and_shred_in_the_console_are_audited_exactly_as_over_the_api(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    await backup_of(client, operator, b"under P-001")
    token = await signed_in(browser, bootstrap_key.api_key)

    async def by_api(call: Any) -> list[AuditLogEntry]:
        before = await head_sequence(services.db)
        answer = await call
        assert answer.status_code in (200, 201), answer.text
        return await _entries_after(services, before)

    async def by_console(path: str, fields: dict[str, str], to: str) -> list[AuditLogEntry]:
        before = await head_sequence(services.db)
        form = {"csrf_token": token, "totp_code": fresh_totp(bootstrap_key, clock), **fields}
        answer = await browser.post(path, data=form)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == to
        return await _entries_after(services, before)

    api_rotation = await by_api(rotate(client, clock, bootstrap_key))  # P-002
    await backup_of(client, operator, b"under P-002")
    rotated = [
        api_rotation,
        await by_console("/keys/rotate", {"reason": "yearly"}, "/console/keys"),  # P-003
    ]
    rewrapped = [
        await by_api(rewrap(client, clock, bootstrap_key, "P-001")),
        await by_console(
            "/keys/rewrap",
            {"from_version": "P-002", "reason": "retire the suspect key"},
            "/console/keys/P-002",
        ),
    ]
    reason = "end of retention for the 2025 archive"
    shredded = [
        await by_api(shred(client, clock, bootstrap_key, "P-001")),
        await by_console(
            "/keys/P-002/crypto-shred",
            {"confirmation": "DESTROY P-002", "reason": reason},
            "/console/keys/P-002",
        ),
    ]

    for api_entries, console_entries in (rotated, rewrapped, shredded):
        assert [_comparable(e) for e in console_entries] == [_comparable(e) for e in api_entries]
    assert [e.action for e in rotated[1]] == ["MFA_SUCCESS", "KEY_ROTATE"]
    assert "CRYPTO_SHRED_COMPLETE" in [e.action for e in shredded[1]]
    assert await _status(services, "P-002") is KeyVersionStatus.DESTROYED
    page = await browser.get("/keys")
    assert re.findall(r'href="/console/keys/(P-\d+)"', page.text) == ["P-001", "P-002", "P-003"]
    assert_csp_clean(page.text)

    # The certificate downloads as the very JSON the API holds, and verifies.
    shown = await client.get("/admin/keys/P-002", headers=headers(bootstrap_key))
    download = await browser.get("/keys/P-002/certificate")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json"
    assert "attachment" in download.headers["content-disposition"]
    assert download.headers["cache-control"] == "no-store"
    assert download.content.decode() in shown.text
    certificate = download.json()
    assert certificate == shown.json()["data"]["destruction_certificate"]
    trusted = public_key_from_pem(
        services.key_store.public_key_path(AUDIT_SIGNING_NAME).read_text()
    )
    assert verify_certificate(certificate, trusted).valid
    assert certificate["reason"] == reason
    detail = await browser.get("/keys/P-002")
    assert 'href="/console/keys/P-002/certificate"' in detail.text
    assert 'action="/console/keys/P-002/crypto-shred"' not in detail.text
    assert (await browser.get("/keys/P-003/certificate")).status_code == 404


@pytest.mark.both_backends
async def test_a_shred_needs_the_typed_confirmation_and_the_code_and_held_backups_block_it(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    held = await backup_of(client, operator, b"held under P-001")
    await backup_of(client, operator, b"also under P-001")
    assert (await rotate(client, clock, bootstrap_key)).status_code == 201
    token = await signed_in(browser, bootstrap_key.api_key)
    form = {"csrf_token": token, "reason": "end of retention"}
    path = "/keys/P-001/crypto-shred"

    page = await browser.get("/keys/P-001")
    before = await head_sequence(services.db)
    missing = await browser.post(path, data={**form, "confirmation": "DESTROY P-001"})
    wrong_code = await browser.post(
        path, data={**form, "confirmation": "DESTROY P-001", "totp_code": "000000"}
    )
    mfa_refused = await _entries_after(services, before)
    before = await head_sequence(services.db)
    wrong = await browser.post(
        path,
        data={
            **form,
            "confirmation": "destroy p-001",
            "totp_code": fresh_totp(bootstrap_key, clock),
        },
    )
    after_wrong = await _entries_after(services, before)
    assert (await place_hold(client, clock, admin, held)).status_code == 200
    blocked = await browser.post(
        path,
        data={
            **form,
            "confirmation": "DESTROY P-001",
            "totp_code": fresh_totp(bootstrap_key, clock),
        },
    )

    assert "Type <code>DESTROY P-001</code> to confirm" in page.text
    assert_csp_clean(page.text)
    for refused, status, code in (
        (missing, 401, "AUTH_MFA_REQUIRED"),
        (wrong_code, 401, "AUTH_MFA_INVALID"),
        (wrong, 422, "VALIDATION_ERROR"),
        (blocked, 409, "CONFLICT"),
    ):
        assert refused.status_code == status, refused.text
        assert code in refused.text
        assert 'action="/console/keys/P-001/crypto-shred"' in refused.text  # the form again
        assert "end of retention</textarea>" in refused.text
    assert "must be &#39;DESTROY P-001&#39;" in wrong.text
    assert [e.action for e in after_wrong] == ["MFA_SUCCESS"]  # as the API: nothing else
    assert "MFA_FAILURE" in [e.action for e in mfa_refused]  # the wrong code, as the API
    assert f'href="/console/backups/{held}"' in blocked.text  # the held backups, listed
    assert "LEGAL_HOLD" in blocked.text
    assert await _status(services, "P-001") is KeyVersionStatus.RETIRED
    assert services.key_store.has_private_key("P-001")


async def test_each_role_sees_and_may_do_what_the_api_allows(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    seen: dict[Role, dict[str, int]] = {}
    for role in (Role.OPERATOR, Role.AUDITOR, Role.ADMIN, Role.SUPER_ADMIN):
        key = bootstrap_key if role is Role.SUPER_ADMIN else await create_api_key(services, role)
        browser.cookies.clear()
        token = await signed_in(browser, key.api_key)
        keys_page = await browser.get("/keys")
        seen[role] = {
            "nav": int('href="/console/keys"' in (await browser.get("/")).text),
            "keys": keys_page.status_code,
            "key": (await browser.get("/keys/P-001")).status_code,
            "forms": len(re.findall(r'<form method="post" action="/console/keys', keys_page.text)),
            "rotate": (
                await browser.post("/keys/rotate", data={"csrf_token": token, "reason": "yearly"})
            ).status_code,
        }

    refused = {"nav": 0, "keys": 403, "key": 403, "forms": 0, "rotate": 403}
    assert seen[Role.OPERATOR] == seen[Role.AUDITOR] == refused
    assert seen[Role.ADMIN] == {"nav": 1, "keys": 200, "key": 200, "forms": 0, "rotate": 403}
    # a super_admin gets the forms, and without a code the rotation is refused 401
    assert seen[Role.SUPER_ADMIN] == {"nav": 1, "keys": 200, "key": 200, "forms": 1, "rotate": 401}
    assert await _status(services, "P-001") is KeyVersionStatus.ACTIVE
    assert (await browser.get("/keys/P-077")).status_code == 404
    assert (await browser.get("/keys/nonsense")).status_code == 404


async def test_in_lockdown_the_keys_pages_answer_as_the_api_and_offer_no_action(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    token = await signed_in(browser, bootstrap_key.api_key)
    await set_incident_level(services, bootstrap_key, IncidentLevel.LOCKDOWN)

    by_api = await client.get("/admin/keys", headers=headers(bootstrap_key))
    page = await browser.get("/keys")
    rotated = await browser.post(
        "/keys/rotate",
        data={
            "csrf_token": token,
            "reason": "yearly",
            "totp_code": fresh_totp(bootstrap_key, clock),
        },
    )

    assert page.status_code == by_api.status_code
    assert 'action="/console/keys/rotate"' not in page.text
    assert rotated.status_code == 423
    assert "INCIDENT_LOCKDOWN" in rotated.text
    assert await _status(services, "P-001") is KeyVersionStatus.ACTIVE


async def test_each_new_form_refuses_a_missing_or_wrong_csrf_token(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    await backup_of(client, operator, b"under P-001")
    assert (await rotate(client, clock, bootstrap_key)).status_code == 201
    await signed_in(browser, bootstrap_key.api_key)
    before = await head_sequence(services.db)
    forms = [
        ("/keys/rotate", {"reason": "yearly"}),
        ("/keys/rewrap", {"from_version": "P-001", "reason": "retire it"}),
        ("/keys/P-001/crypto-shred", {"confirmation": "DESTROY P-001", "reason": "gone"}),
    ]

    for path, fields in forms:
        for token in ({}, {"csrf_token": "forged"}):
            code = fresh_totp(bootstrap_key, clock)
            answer = await browser.post(path, data={**fields, **token, "totp_code": code})
            assert answer.status_code == 403, path
            assert "CSRF_TOKEN_INVALID" in answer.text

    assert await head_sequence(services.db) == before  # nothing done, nothing audited
    listed = {view.record.version: view for view in await services.keys.list_keys()}
    assert listed["P-001"].record.status is KeyVersionStatus.RETIRED
    assert listed["P-001"].backups == 1  # not rewrapped
    assert listed["P-002"].record.status is KeyVersionStatus.ACTIVE


# API keys


def _shown_once(page: httpx.Response, name: str) -> str:
    found = re.search(f'<dt>{name}</dt><dd><code class="secret">([^<]+)</code>', page.text)
    assert found is not None, page.text
    return found.group(1)


@pytest.mark.both_backends
async def test_api_keys_created_and_revoked_in_the_console_are_audited_as_over_the_api(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    token = await signed_in(browser, bootstrap_key.api_key)
    body = {"role": "super_admin", "description": "second", "department": "IT"}
    fields = {**body, "expires_at": "2030-01-31T08:00", "allowed_ips": "10.0.0.0/8, 192.0.2.10"}

    before = await head_sequence(services.db)
    by_api = await client.post(
        "/admin/api-keys",
        headers=with_mfa(clock, bootstrap_key),
        json={
            **body,
            "expires_at": "2030-01-31T08:00:00Z",
            "allowed_ips": ["10.0.0.0/8", "192.0.2.10"],
        },
    )
    assert by_api.status_code == 201, by_api.text
    api_created = await _entries_after(services, before)
    before = await head_sequence(services.db)
    created = await browser.post(
        "/api-keys",
        data={"csrf_token": token, "totp_code": fresh_totp(bootstrap_key, clock), **fields},
    )
    console_created = await _entries_after(services, before)
    new_key = _shown_once(created, "API key")
    totp_secret = _shown_once(created, "TOTP secret")  # a super_admin is enrolled

    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    assert_csp_clean(created.text)
    assert [e.action for e in console_created] == ["MFA_SUCCESS", "API_KEY_CREATE"]
    assert [_comparable(e) for e in console_created] == [_comparable(e) for e in api_created]
    key_id = console_created[1].resource.removeprefix("api_key:")
    shown = (await client.get(f"/admin/api-keys/{key_id}", headers=headers(bootstrap_key))).json()
    assert (shown["data"]["role"], shown["data"]["department"]) == ("super_admin", "IT")
    assert shown["data"]["allowed_ips"] == ["10.0.0.0/8", "192.0.2.10"]
    assert shown["data"]["expires_at"] == "2030-01-31T08:00:00Z"
    # never shown again
    for path in ("/api-keys", f"/api-keys/{key_id}"):
        again = await browser.get(path)
        assert again.status_code == 200
        assert new_key not in again.text
        assert totp_secret not in again.text
        assert_csp_clean(again.text)

    before = await head_sequence(services.db)
    api_id = by_api.json()["data"]["key_id"]
    revoked_by_api = await client.delete(
        f"/admin/api-keys/{api_id}", headers=headers(bootstrap_key), params={"reason": "left"}
    )
    assert revoked_by_api.status_code == 200
    api_revoked = await _entries_after(services, before)
    before = await head_sequence(services.db)
    unconfirmed = await browser.post(
        f"/api-keys/{key_id}/revoke", data={"csrf_token": token, "reason": "left"}
    )
    assert unconfirmed.status_code == 422
    assert await head_sequence(services.db) == before
    revoked = await browser.post(
        f"/api-keys/{key_id}/revoke", data={"csrf_token": token, "reason": "left", "confirm": "yes"}
    )
    console_revoked = await _entries_after(services, before)

    assert revoked.status_code == 303
    assert revoked.headers["location"] == f"/console/api-keys/{key_id}"
    assert [e.action for e in console_revoked] == ["API_KEY_REVOKE"]
    assert [_comparable(e) for e in console_revoked] == [_comparable(e) for e in api_revoked]
    detail = await browser.get(f"/api-keys/{key_id}")
    assert "REVOKED" in detail.text
    assert f'action="/console/api-keys/{key_id}/revoke"' not in detail.text


async def test_a_super_admin_key_needs_the_code_and_a_bad_form_creates_nothing(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    token = await signed_in(browser, bootstrap_key.api_key)
    fields = {"csrf_token": token, "role": "super_admin", "description": "needs a code"}
    before = len(await services.api_keys.list_api_keys())

    missing = await browser.post("/api-keys", data=fields)
    wrong = await browser.post("/api-keys", data={**fields, "totp_code": "000000"})
    bad_ip = await browser.post(
        "/api-keys", data={**fields, "role": "operator", "allowed_ips": "not-an-ip"}
    )
    bad_role = await browser.post("/api-keys", data={**fields, "role": "root"})
    operator = await browser.post("/api-keys", data={**fields, "role": "operator"})

    for refused, status, code in (
        (missing, 401, "AUTH_MFA_REQUIRED"),
        (wrong, 401, "AUTH_MFA_INVALID"),
        (bad_ip, 422, "VALIDATION_ERROR"),
        (bad_role, 422, "VALIDATION_ERROR"),
    ):
        assert refused.status_code == status, refused.text
        assert code in refused.text
        assert 'value="needs a code"' in refused.text  # the form again, as filled
    assert "allowed_ips" in bad_ip.text
    assert operator.status_code == 201  # other roles need no code, as over the API
    assert "<dt>TOTP secret</dt>" not in operator.text  # not enrolled
    assert len(await services.api_keys.list_api_keys()) == before + 1


async def test_only_a_super_admin_reaches_the_api_keys_pages_and_forms_need_the_csrf_token(
    browser: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    token = await signed_in(browser, admin.api_key)
    overview = await browser.get("/")
    listed = await browser.get("/api-keys")
    detail = await browser.get(f"/api-keys/{admin.record.id}")
    create = await browser.post(
        "/api-keys", data={"csrf_token": token, "role": "operator", "description": "x"}
    )
    revoke = await browser.post(
        f"/api-keys/{bootstrap_key.record.id}/revoke", data={"csrf_token": token, "confirm": "yes"}
    )
    assert 'href="/console/api-keys"' not in overview.text
    assert (listed.status_code, detail.status_code, create.status_code, revoke.status_code) == (
        403,
        403,
        403,
        403,
    )

    browser.cookies.clear()
    await signed_in(browser, bootstrap_key.api_key)
    assert 'href="/console/api-keys"' in (await browser.get("/")).text
    assert (await browser.get("/api-keys/not-an-id")).status_code == 404
    before = await head_sequence(services.db)
    forms = [
        ("/api-keys", {"role": "operator", "description": "x"}),
        (f"/api-keys/{admin.record.id}/revoke", {"confirm": "yes"}),
    ]
    for path, fields in forms:
        for token_field in ({}, {"csrf_token": "forged"}):
            answer = await browser.post(path, data={**fields, **token_field})
            assert answer.status_code == 403, path
            assert "CSRF_TOKEN_INVALID" in answer.text
    assert await head_sequence(services.db) == before
    assert (await services.api_keys.get_api_key(admin.record.id)).revoked_at is None


# Policies

POLICY_FORM = {
    "name": "no night restores",
    "description": "finance restores wait for the day",
    "effect": "require_mfa",
    "priority": "50",
    "is_active": "yes",
    "operations": ["restore", "delete"],
    "roles": ["admin"],
    "classifications": ["CONFIDENTIAL", "SECRET"],
    "source_systems": "finance-* erp",
    "departments": "Finance",
    "hours": "18-24",
}


def _policy_body(name: str, **changes: Any) -> dict[str, Any]:
    """``POLICY_FORM`` as the API's JSON body."""
    return {
        "name": name,
        "description": POLICY_FORM["description"],
        "effect": "require_mfa",
        "priority": 50,
        "is_active": True,
        "rule": {
            "operations": ["restore", "delete"],
            "roles": ["admin"],
            "classifications": ["CONFIDENTIAL", "SECRET"],
            "source_systems": ["finance-*", "erp"],
            "departments": ["Finance"],
            "hours": "18-24",
        },
        **changes,
    }


def _policy_entries(entries: list[AuditLogEntry]) -> list[AuditLogEntry]:
    return [e for e in entries if e.action.startswith("POLICY_")]


@pytest.mark.both_backends
async def test_policies_created_and_updated_in_the_console_are_audited_as_over_the_api(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    token = await signed_in(browser, admin.api_key)

    before = await head_sequence(services.db)
    by_api = await client.post(
        "/admin/policies", headers=headers(admin), json=_policy_body("by api")
    )
    assert by_api.status_code == 201, by_api.text
    api_created = await _entries_after(services, before)
    before = await head_sequence(services.db)
    created = await browser.post(
        "/policies", data={"csrf_token": token, **POLICY_FORM, "name": "by console"}
    )
    console_created = await _entries_after(services, before)
    assert created.status_code == 303, created.text
    policy_id = created.headers["location"].removeprefix("/console/policies/")

    api_id = by_api.json()["data"]["policy_id"]
    rule = {"operations": ["backup"], "hours": "00-06"}
    before = await head_sequence(services.db)
    patched = await client.patch(
        f"/admin/policies/{api_id}",
        headers=headers(admin),
        json=_policy_body("by api 2", effect="deny", priority=7, is_active=False, rule=rule),
    )
    assert patched.status_code == 200, patched.text
    api_updated = await _entries_after(services, before)
    before = await head_sequence(services.db)
    changes = {"name": "by console 2", "effect": "deny", "priority": "7"}
    form = {**POLICY_FORM, **changes, "operations": ["backup"], "hours": "00-06"}
    for empty in ("is_active", "roles", "classifications"):
        del form[empty]
    form.update(source_systems="", departments="")
    updated = await browser.post(f"/policies/{policy_id}", data={"csrf_token": token, **form})
    console_updated = await _entries_after(services, before)

    assert updated.status_code == 303, updated.text
    for api_entries, console_entries in (
        (api_created, console_created),
        (api_updated, console_updated),
    ):
        assert [_comparable(e) for e in _policy_entries(console_entries)] == [
            _comparable(e) for e in _policy_entries(api_entries)
        ]
    assert [e.action for e in _policy_entries(console_created + console_updated)] == [
        "POLICY_CREATE",
        "POLICY_UPDATE",
    ]
    shown = (await client.get(f"/admin/policies/{policy_id}", headers=headers(admin))).json()
    api_shown = (await client.get(f"/admin/policies/{api_id}", headers=headers(admin))).json()
    for name in ("effect", "priority", "is_active", "rule", "description"):
        assert shown["data"][name] == api_shown["data"][name], name
    assert shown["data"]["rule"] == rule
    page = await browser.get(f"/policies/{policy_id}")
    listing = await browser.get("/policies")
    assert "by console 2" in page.text
    assert 'value="00-06"' in page.text  # the form, filled from the policy
    listed = re.findall(r'href="/console/policies/([0-9a-f-]{36})"', listing.text)
    assert listed == [api_id, policy_id]  # evaluation order: priority (both 7), then name
    for html in (page.text, listing.text):
        assert_csp_clean(html)


async def test_a_refused_policy_form_shows_the_refusal_and_changes_nothing(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    token = await signed_in(browser, admin.api_key)
    first = await browser.post("/policies", data={"csrf_token": token, **POLICY_FORM})
    assert first.status_code == 303
    policy_id = first.headers["location"].removeprefix("/console/policies/")

    taken = await browser.post("/policies", data={"csrf_token": token, **POLICY_FORM})
    bad_hours = await browser.post(
        "/policies", data={"csrf_token": token, **POLICY_FORM, "name": "other", "hours": "25-99"}
    )
    bad_priority = await browser.post(
        f"/policies/{policy_id}", data={"csrf_token": token, **POLICY_FORM, "priority": "soon"}
    )
    bad_operation = await browser.post(
        "/policies",
        data={"csrf_token": token, **POLICY_FORM, "name": "x", "operations": ["format"]},
    )

    assert (taken.status_code, bad_hours.status_code) == (409, 422)
    assert (bad_priority.status_code, bad_operation.status_code) == (422, 422)
    assert "CONFLICT" in taken.text
    assert "rule.hours" in bad_hours.text
    assert "priority" in bad_priority.text
    assert 'value="finance-* erp"' in bad_hours.text  # the form again, as filled
    listed = await services.policies.list_policies()
    assert [(p.name, p.priority) for p in listed] == [("no night restores", 50)]


async def test_policies_are_for_admins_and_their_forms_need_the_csrf_token(
    browser: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
) -> None:
    seen = {}
    for role in (Role.OPERATOR, Role.AUDITOR, Role.ADMIN):
        key = await create_api_key(services, role)
        browser.cookies.clear()
        token = await signed_in(browser, key.api_key)
        seen[role] = (
            int('href="/console/policies"' in (await browser.get("/")).text),
            (await browser.get("/policies")).status_code,
            (
                await browser.post("/policies", data={"csrf_token": token, **POLICY_FORM})
            ).status_code,
        )
    assert seen == {
        Role.OPERATOR: (0, 403, 403),
        Role.AUDITOR: (0, 403, 403),
        Role.ADMIN: (1, 200, 303),
    }
    (policy,) = await services.policies.list_policies()
    assert (await browser.get("/policies/not-an-id")).status_code == 404
    before = await head_sequence(services.db)
    for path in ("/policies", f"/policies/{policy.id}"):
        for token_field in ({}, {"csrf_token": "forged"}):
            fields = {**POLICY_FORM, "name": "forged", **token_field}
            answer = await browser.post(path, data=fields)
            assert answer.status_code == 403, path
            assert "CSRF_TOKEN_INVALID" in answer.text
    assert await head_sequence(services.db) == before
    assert [p.name for p in await services.policies.list_policies()] == ["no night restores"]
