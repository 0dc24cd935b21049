"""The Restores and Audit pages in a real browser: a four-eyes restore between two admins (two
browser contexts), and validating and exporting the audit chain (screenshots "restores",
"restore", "audit" and "audit-validation")."""

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, expect

from ssbg.domain.enums import Role
from ssbg.domain.incident import IncidentLevel
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.browser.conftest import DESKTOP, Console, open_console
from tests.support.factories import create_api_key
from tests.support.restores import set_incident_level
from tests.support.threaded_gateway import ThreadedGateway

JUSTIFICATION = "INC-4711: restore the orders database after the disk failure"


@pytest.fixture
def second_console(chromium: Browser, gateway: ThreadedGateway) -> Iterator[Console]:
    """Another browser context (a second admin), beside ``console``."""
    yield from open_console(chromium, gateway, DESKTOP)


def _admin(gateway: ThreadedGateway) -> IssuedApiKey:
    async def create(services: Services) -> IssuedApiKey:
        return await create_api_key(services, Role.ADMIN)

    return gateway.call(create)


def _totp(gateway: ThreadedGateway, key: IssuedApiKey) -> str:
    """A fresh code for ``key`` on the gateway's clock (each TOTP step is accepted once)."""
    assert key.totp_secret is not None
    return pyotp.TOTP(key.totp_secret).at(gateway.clock.advance(seconds=30))


def _quarantine(gateway: ThreadedGateway) -> None:
    assert gateway.bootstrap_key is not None
    super_admin = gateway.bootstrap_key

    async def raise_level(services: Services) -> None:
        await set_incident_level(services, super_admin, IncidentLevel.QUARANTINE)

    gateway.call(raise_level)


def _backup(gateway: ThreadedGateway, owner: IssuedApiKey, payload: bytes) -> dict[str, str]:
    """A backup stored over the JSON API; its record as the API shows it."""
    with httpx.Client(
        base_url=f"{gateway.url}/api/v1", headers={"X-API-Key": owner.api_key}
    ) as api:
        stored = api.post(
            "/backups",
            params={"classification": "INTERNAL", "source_system": "db-1", "filename": "o.sql"},
            headers={"Content-Type": "application/octet-stream"},
            content=payload,
        )
        assert stored.status_code == 201, stored.text
        backup_id = stored.json()["data"]["backup_id"]
        record: dict[str, str] = api.get(f"/backups/{backup_id}").json()["data"]
    return record


def test_a_four_eyes_restore_between_two_admins(
    console: Console, second_console: Console, tmp_path: Path
) -> None:
    gateway = console.gateway
    requester, approver = _admin(gateway), _admin(gateway)
    payload = b"orders table dump\n" * 5000
    backup = _backup(gateway, requester, payload)
    _quarantine(gateway)  # level 2: every restore waits for a second admin
    mine, theirs = console.page, second_console.page

    # Admin A asks, from the backup's page, with a justification and a TOTP code (level >= 1).
    console.sign_in(requester.api_key)
    mine.goto(console.url(f"/backups/{backup['backup_id']}"))
    mine.get_by_role("link", name="Request a restore of this backup").click()
    expect(mine.get_by_label("Backup id")).to_have_value(backup["backup_id"])
    mine.get_by_label("Justification").fill(JUSTIFICATION)
    mine.get_by_label("TOTP code (when needed)").fill(_totp(gateway, requester))
    mine.get_by_role("button", name="Request restore").click()
    expect(mine).to_have_url(re.compile(r"/console/restores/[0-9a-f-]{36}$"))
    restore_id = mine.url.rsplit("/", 1)[1]
    expect(mine.locator("dl.fields span.status")).to_have_text("PENDING_APPROVAL")
    expect(mine.get_by_role("button", name="Approve")).to_have_count(0)
    console.screenshot("restore")
    # ... and cannot approve it even by posting the form itself: four eyes, as over the API.
    csrf = mine.locator('input[name="csrf_token"]').first.get_attribute("value")
    self_approval = mine.request.post(
        console.url(f"/restores/{restore_id}/approve"),
        form={"csrf_token": csrf or "", "totp_code": _totp(gateway, requester)},
    )
    assert self_approval.status == 403
    assert "APPROVAL" in self_approval.text()

    # Admin B, in a browser of their own, approves with their TOTP code.
    second_console.sign_in(approver.api_key)
    theirs.get_by_role("navigation", name="Console").get_by_role("link", name="Restores").click()
    expect(theirs.get_by_role("heading", name="Restores", level=1)).to_be_visible()
    second_console.screenshot("restores")
    theirs.locator(f'a[href="/console/restores/{restore_id}"]').click()
    theirs.locator("#approve-totp").fill(_totp(gateway, approver))
    theirs.get_by_role("button", name="Approve").click()
    expect(theirs.locator("dl.fields span.status")).to_have_text("COMPLETED")

    # Admin A downloads: a fresh token, used at once; the bytes are the backup's.
    mine.reload()
    mine.locator("#download-totp").fill(_totp(gateway, requester))
    with mine.expect_download() as started:
        mine.get_by_role("button", name="Download").click()
    saved = tmp_path / "restored"
    started.value.save_as(saved)
    assert started.value.suggested_filename == "o.sql"
    assert hashlib.sha512(saved.read_bytes()).hexdigest() == backup["checksum_plaintext"]


def test_validate_and_export_the_audit_chain(console: Console, tmp_path: Path) -> None:
    assert console.gateway.bootstrap_key is not None
    page = console.page
    console.sign_in(console.gateway.bootstrap_key.api_key)

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit", level=1)).to_be_visible()
    expect(page.locator("table.audit tbody tr").first).to_be_visible()
    console.screenshot("audit")
    page.get_by_label("Action").select_option("CONSOLE_SIGN_IN")  # the script submits it
    expect(page).to_have_url(re.compile(r"action=CONSOLE_SIGN_IN"))
    expect(page.locator("table.audit tbody tr").first).to_contain_text("CONSOLE_SIGN_IN")

    with page.expect_download() as started:
        page.get_by_role("button", name="Export bundle").click()
    saved = tmp_path / "bundle.jsonl"
    started.value.save_as(saved)
    records = [json.loads(line) for line in saved.read_text().splitlines()]
    assert len(records) > 2

    page.get_by_role("button", name="Validate now").click()
    expect(page.get_by_role("heading", name="Valid", level=2)).to_be_visible()
    expect(page.locator("dd.first-invalid")).to_have_text("—")
    console.screenshot("audit-validation")


def test_the_restores_and_audit_pages_fit_a_phone(phone: Console) -> None:
    assert phone.gateway.bootstrap_key is not None
    phone.sign_in(phone.gateway.bootstrap_key.api_key)
    overflow = {}
    for path in ("/restores", "/audit"):
        phone.page.goto(phone.url(path))
        overflow[path] = phone.horizontal_overflow()

    assert set(overflow.values()) == {0}, overflow
