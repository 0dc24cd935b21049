"""The console's Restores and Audit pages over HTTP: what each role may see and do, the CSRF
refusal on every new form, the TOTP codes the API requires, four eyes, the download through the
token flow, validation and export — and that each action is the API's own: the same audit
entries as over the API."""

import hashlib
import json
import re
from typing import Any

import httpx
import pyotp
import pytest

from ssbg.domain.enums import Role
from ssbg.domain.incident import IncidentLevel
from ssbg.infrastructure.db.models import AuditLogEntry
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries, head_sequence
from tests.support.audit_chain import append_until, update_entry
from tests.support.clock import FixedClock
from tests.support.console import assert_csp_clean, signed_in
from tests.support.factories import create_api_key, headers
from tests.support.restores import JUSTIFICATION, backup_of, request_restore, set_incident_level

_RESTORE_LINK = re.compile(r'href="/console/restores/([0-9a-f-]{36})"')


def _totp(key: IssuedApiKey, clock: FixedClock) -> str:
    """A fresh code for ``key`` (each TOTP step is accepted once)."""
    assert key.totp_secret is not None
    return pyotp.TOTP(key.totp_secret).at(clock.advance(seconds=30))


def _comparable(entry: AuditLogEntry, restore_id: str) -> dict[str, Any]:
    """What must be the same between the console's entry and the API's for one action."""
    details = {k: v for k, v in entry.details.items() if k not in ("restore_id",)}
    return {
        "action": entry.action,
        "actor_id": entry.actor_id,
        "actor_role": entry.actor_role,
        "resource": entry.resource.replace(restore_id, "<restore>"),
        "result": entry.result,
        "source_ip": entry.source_ip,
        "details": sorted(details),
    }


async def _entries_after(services: Services, sequence: int) -> list[AuditLogEntry]:
    return [e for e in await audit_entries(services.db) if e.sequence_number > sequence]


async def _console_request(
    browser: httpx.AsyncClient, token: str, backup_id: str, totp_code: str = ""
) -> httpx.Response:
    return await browser.post(
        "/restores",
        data={
            "csrf_token": token,
            "backup_id": backup_id,
            "justification": JUSTIFICATION,
            "totp_code": totp_code,
        },
    )


def _restore_id_of(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("/console/restores/")
    return location.rsplit("/", 1)[1]


@pytest.mark.both_backends
async def test_a_restore_requested_and_downloaded_in_the_console_is_audited_as_over_the_api(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    payload = b"console restore payload " * 1000
    backup_id = await backup_of(client, admin, payload)
    token = await signed_in(browser, admin.api_key)

    before_api = await head_sequence(services.db)
    by_api = await request_restore(client, admin, backup_id)
    assert by_api.status_code == 201, by_api.text
    api_id = by_api.json()["data"]["restore_id"]
    collected = await client.post(f"/restores/{api_id}/token", headers=headers(admin))
    api_download = await client.get(
        f"/restores/{api_id}/download",
        headers={
            **headers(admin),
            "X-Restore-Token": collected.json()["data"]["download"]["token"],
        },
    )
    assert api_download.content == payload
    api_entries = await _entries_after(services, before_api)

    clock.advance(seconds=1)  # listed newest first
    before_console = await head_sequence(services.db)
    console_id = _restore_id_of(await _console_request(browser, token, backup_id))
    downloaded = await browser.post(f"/restores/{console_id}/download", data={"csrf_token": token})
    console_entries = await _entries_after(services, before_console)

    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == payload
    assert downloaded.headers["content-disposition"].startswith("attachment;")
    assert downloaded.headers["x-content-sha512"] == hashlib.sha512(payload).hexdigest()
    assert [_comparable(e, console_id) for e in console_entries] == [
        _comparable(e, api_id) for e in api_entries
    ]
    assert [e.action for e in console_entries] == [
        "RESTORE_REQUEST",
        "POLICY_CHECK_ALLOW",
        "KEY_UNWRAP",
        "RESTORE_COMPLETE",
        "POLICY_CHECK_ALLOW",  # the console's download: a fresh token, as POST .../token
        "RESTORE_COMPLETE",
        "KEY_UNWRAP",
        "RESTORE_DOWNLOAD",
    ]
    listing = await browser.get("/restores")
    detail = await browser.get(f"/restores/{console_id}")
    assert _RESTORE_LINK.findall(listing.text) == [console_id, api_id]  # newest first
    assert "COMPLETED" in detail.text
    assert 'action="/console/restores/' + console_id + '/download"' in detail.text
    for html in (listing.text, detail.text):
        assert_csp_clean(html)


@pytest.mark.both_backends
async def test_four_eyes_in_the_console_between_two_admins(
    browser: httpx.AsyncClient,
    second_browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    requester = await create_api_key(services, Role.ADMIN)
    approver = await create_api_key(services, Role.ADMIN)
    payload = b"restore me under quarantine"
    backup_id = await backup_of(client, requester, payload)
    await set_incident_level(services, bootstrap_key, IncidentLevel.QUARANTINE)
    mine = await signed_in(browser, requester.api_key)
    theirs = await signed_in(second_browser, approver.api_key)

    without_code = await _console_request(browser, mine, backup_id)
    restore_id = _restore_id_of(
        await _console_request(browser, mine, backup_id, _totp(requester, clock))
    )
    own_page = await browser.get(f"/restores/{restore_id}")
    self_approval = await browser.post(
        f"/restores/{restore_id}/approve",
        data={"csrf_token": mine, "totp_code": _totp(requester, clock)},
    )
    their_page = await second_browser.get(f"/restores/{restore_id}")
    approve_without_code = await second_browser.post(
        f"/restores/{restore_id}/approve", data={"csrf_token": theirs}
    )
    approved = await second_browser.post(
        f"/restores/{restore_id}/approve",
        data={"csrf_token": theirs, "totp_code": _totp(approver, clock)},
    )
    download_without_code = await browser.post(
        f"/restores/{restore_id}/download", data={"csrf_token": mine}
    )
    downloaded = await browser.post(
        f"/restores/{restore_id}/download",
        data={"csrf_token": mine, "totp_code": _totp(requester, clock)},
    )

    assert without_code.status_code == 401
    assert "AUTH_MFA_REQUIRED" in without_code.text
    assert "PENDING_APPROVAL" in own_page.text
    assert "/approve" not in own_page.text  # the requester is not offered the decision
    assert self_approval.status_code == 403
    assert "APPROVAL" in self_approval.text
    assert "/approve" in their_page.text
    assert approve_without_code.status_code == 401
    assert "AUTH_MFA_REQUIRED" in approve_without_code.text
    assert approved.status_code == 303, approved.text
    assert download_without_code.status_code == 401
    assert downloaded.status_code == 200, downloaded.text
    assert hashlib.sha512(downloaded.content).hexdigest() == hashlib.sha512(payload).hexdigest()
    shown = (await client.get(f"/restores/{restore_id}", headers=headers(approver))).json()
    assert shown["data"]["approved_by"] == str(approver.record.id)
    actions = [e.action for e in await audit_entries(services.db)]
    assert actions.count("RESTORE_APPROVED") == 1
    assert actions.count("MFA_FAILURE") == 1  # the approval without a code, as over the API


async def test_a_rejection_in_the_console_needs_a_reason_and_a_code(
    browser: httpx.AsyncClient,
    second_browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    requester = await create_api_key(services, Role.ADMIN)
    approver = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, requester, b"not today")
    await set_incident_level(services, bootstrap_key, IncidentLevel.QUARANTINE)
    mine = await signed_in(browser, requester.api_key)
    theirs = await signed_in(second_browser, approver.api_key)
    restore_id = _restore_id_of(
        await _console_request(browser, mine, backup_id, _totp(requester, clock))
    )

    no_reason = await second_browser.post(
        f"/restores/{restore_id}/reject",
        data={"csrf_token": theirs, "totp_code": _totp(approver, clock)},
    )
    wrong_code = await second_browser.post(
        f"/restores/{restore_id}/reject",
        data={"csrf_token": theirs, "reason": "not justified", "totp_code": "000000"},
    )
    rejected = await second_browser.post(
        f"/restores/{restore_id}/reject",
        data={"csrf_token": theirs, "reason": "not justified", "totp_code": _totp(approver, clock)},
    )

    assert no_reason.status_code == 422
    assert wrong_code.status_code == 401
    assert "AUTH_MFA_INVALID" in wrong_code.text
    assert rejected.status_code == 303, rejected.text
    page = await browser.get(f"/restores/{restore_id}")
    assert "REJECTED" in page.text
    assert "not justified" in page.text


async def test_every_restore_form_refuses_a_missing_csrf_token_and_does_nothing(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"csrf")
    pending = await request_restore(client, admin, backup_id)
    restore_id = pending.json()["data"]["restore_id"]
    await signed_in(browser, admin.api_key)
    before = await head_sequence(services.db)

    answers = [
        await browser.post(
            "/restores",
            data={"backup_id": backup_id, "justification": JUSTIFICATION, "csrf_token": "x"},
        ),
        await browser.post(
            f"/restores/{restore_id}/approve", data={"totp_code": _totp(admin, clock)}
        ),
        await browser.post(f"/restores/{restore_id}/reject", data={"reason": "no reason"}),
        await browser.post(f"/restores/{restore_id}/download", data={}),
    ]

    for answer in answers:
        assert answer.status_code == 403, answer.text
        assert "CSRF_TOKEN_INVALID" in answer.text
    assert await head_sequence(services.db) == before  # nothing done, nothing recorded


async def test_restores_are_for_admins_only_as_over_the_api(
    browser: httpx.AsyncClient,
    second_browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    auditor = await create_api_key(services, Role.AUDITOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"roles")
    await signed_in(browser, operator.api_key)
    token = await signed_in(second_browser, auditor.api_key)

    listing = await browser.get("/restores")
    overview = await browser.get("/")
    by_auditor = await second_browser.post(
        "/restores",
        data={"csrf_token": token, "backup_id": backup_id, "justification": JUSTIFICATION},
    )
    by_api = await request_restore(client, auditor, backup_id)
    bad_filter = await browser.get("/restores", params={"status": "NOPE"})

    assert listing.status_code == 403
    assert "FORBIDDEN_ROLE" in listing.text
    assert 'href="/console/restores"' not in overview.text  # not in the navigation
    assert by_auditor.status_code == by_api.status_code == 403
    assert bad_filter.status_code == 403  # the role is checked before anything else
    actions = [e.action for e in await audit_entries(services.db)]
    assert actions.count("AUTHZ_DENY") >= 3


async def test_the_restore_listing_filters_and_pages(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    services: Services,
    clock: FixedClock,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, admin, b"many")
    made = []
    for _ in range(21):
        clock.advance(minutes=13)  # under the limit of 5 restores per key per hour
        answer = await request_restore(client, admin, backup_id)
        assert answer.status_code == 201, answer.text
        made.append(answer.json()["data"]["restore_id"])
    await signed_in(browser, admin.api_key)

    first = await browser.get("/restores", params={"status": "COMPLETED"})
    next_link = re.search(r'href="(/console/restores\?[^"]*cursor=[^"]+)" rel="next"', first.text)
    assert next_link is not None
    second = await browser.get(next_link.group(1).removeprefix("/console").replace("&amp;", "&"))
    denied = await browser.get("/restores", params={"status": "DENIED"})
    prefilled = await browser.get("/restores", params={"backup_id": backup_id})
    backup_page = await browser.get(f"/backups/{backup_id}")

    assert _RESTORE_LINK.findall(first.text) == made[::-1][:20]
    assert _RESTORE_LINK.findall(second.text) == [made[0]]
    assert "No restore requests match these filters." in denied.text
    assert f'value="{backup_id}"' in prefilled.text
    assert f'href="/console/restores?backup_id={backup_id}"' in backup_page.text
    assert (await browser.get("/restores/not-an-id")).status_code == 404


# --- Audit -------------------------------------------------------------------------------------


def _same_shape(entry: AuditLogEntry) -> dict[str, Any]:
    """An audit entry about the audit log: the same for the console as for the API."""
    return {
        "action": entry.action,
        "actor_id": entry.actor_id,
        "resource": entry.resource,
        "result": entry.result,
        "details": sorted(entry.details),
    }


@pytest.mark.both_backends
async def test_the_audit_page_reads_validates_and_exports_as_the_api_does(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, services: Services
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    token = await signed_in(browser, auditor.api_key)

    before_api = await head_sequence(services.db)
    assert (await client.get("/audit/entries", headers=headers(auditor))).status_code == 200
    by_api = await client.post("/audit/validate", headers=headers(auditor))
    api_bundle = await client.get("/audit/export", headers=headers(auditor))
    api_entries = await _entries_after(services, before_api)
    before_console = await head_sequence(services.db)
    page = await browser.get("/audit")
    validated = await browser.post("/audit/validate", data={"csrf_token": token})
    exported = await browser.post("/audit/export", data={"csrf_token": token})
    console_entries = await _entries_after(services, before_console)

    assert page.status_code == validated.status_code == exported.status_code == 200
    assert [e.action for e in console_entries] == ["AUDIT_READ", "AUDIT_VALIDATE", "AUDIT_EXPORT"]
    assert [_same_shape(e) for e in console_entries] == [_same_shape(e) for e in api_entries]
    assert console_entries[1].details["via"] == "console"
    assert by_api.json()["data"]["valid"] is True
    assert "Valid" in validated.text
    assert 'class="first-invalid">—<' in validated.text
    assert exported.headers["content-disposition"] == api_bundle.headers["content-disposition"]
    assert exported.headers["content-type"] == api_bundle.headers["content-type"]
    records = [json.loads(line) for line in exported.text.splitlines()]
    assert len(records) == len(api_bundle.text.splitlines()) + 3  # the three console entries
    assert re.findall(r'<th scope="row" class="num">(\d+)</th>', page.text)[0] == "1"
    for html in (page.text, validated.text):
        assert_csp_clean(html)


@pytest.mark.both_backends
async def test_validate_now_shows_the_first_invalid_sequence_and_its_reason(
    browser: httpx.AsyncClient, services: Services
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    await append_until(services, 8)
    await update_entry(services, 6, resource="backup:tampered")
    token = await signed_in(browser, auditor.api_key)

    validated = await browser.post("/audit/validate", data={"csrf_token": token})

    assert validated.status_code == 200
    assert "Invalid" in validated.text
    assert 'class="first-invalid">6<' in validated.text
    assert "HASH_MISMATCH" in validated.text
    recorded = list(await audit_entries(services.db, "AUDIT_VALIDATE"))[-1]
    assert recorded.result == "FAILED"


async def test_the_audit_filters_and_pages_through_after_sequence(
    browser: httpx.AsyncClient, services: Services
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)
    await append_until(services, 120)
    await signed_in(browser, auditor.api_key)

    first = await browser.get("/audit")
    next_link = re.search(r'href="/console(/audit\?[^"]*)" rel="next"', first.text)
    assert next_link is not None
    second = await browser.get(next_link.group(1).replace("&amp;", "&"))
    by_actor = await browser.get(
        "/audit", params={"action": "CONSOLE_SIGN_IN", "actor_id": str(auditor.record.id)}
    )
    late = await browser.get("/audit", params={"from": "2999-01-01T00:00:00Z"})
    bad = [
        await browser.get("/audit", params={"from": "yesterday"}),
        await browser.get("/audit", params={"action": "NOPE"}),
        await browser.get("/audit", params={"actor_id": "me"}),
        await browser.get("/audit", params={"after_sequence": "-1"}),
    ]

    sequences = re.findall(r'<th scope="row" class="num">(\d+)</th>', first.text)
    assert sequences == [str(n) for n in range(1, 51)]
    assert re.findall(r'<th scope="row" class="num">(\d+)</th>', second.text)[0] == "51"
    assert len(re.findall(r'<th scope="row" class="num">(\d+)</th>', by_actor.text)) == 1
    assert "<td>CONSOLE_SIGN_IN</td>" in by_actor.text
    assert "No audit entries match these filters." in late.text
    assert [answer.status_code for answer in bad] == [422, 422, 422, 422]


async def test_the_audit_page_is_for_auditors_and_admins_and_its_forms_need_the_csrf_token(
    browser: httpx.AsyncClient,
    second_browser: httpx.AsyncClient,
    services: Services,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    await signed_in(browser, operator.api_key)
    await signed_in(second_browser, admin.api_key)

    refused = await browser.get("/audit")
    admitted = await second_browser.get("/audit")
    before = await head_sequence(services.db)
    forged = [
        await second_browser.post("/audit/validate", data={}),
        await second_browser.post("/audit/export", data={"csrf_token": "forged"}),
    ]

    assert refused.status_code == 403
    assert "FORBIDDEN_ROLE" in refused.text
    assert admitted.status_code == 200
    assert 'href="/console/audit"' in admitted.text
    for answer in forged:
        assert answer.status_code == 403
        assert "CSRF_TOKEN_INVALID" in answer.text
    assert await head_sequence(services.db) == before
