"""The Keys page in a real browser: crypto-shredding a retired key version with the typed
confirmation (a wrong one is refused and nothing changes), then downloading its destruction
certificate, which verifies as the API's does (screenshots "keys" and "key").

The gateway here has a key store of its own: this module destroys a key."""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Page, expect

from ssbg.infrastructure.crypto.audit_signing import public_key_from_pem
from ssbg.infrastructure.crypto.certificates import verify_certificate
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.browser.conftest import Console
from tests.conftest import TEST_KEY_PASSWORD, gateway_settings
from tests.support.clock import FixedClock
from tests.support.databases import SqliteTemplate
from tests.support.factories import headers
from tests.support.keys import copy_key_store
from tests.support.threaded_gateway import ThreadedGateway


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: SqliteTemplate,
    shared_key_store: FileKeyStore,
) -> Iterator[ThreadedGateway]:
    """As the browser tests' gateway, but on a copy of the key store (a key is destroyed)."""
    directory = tmp_path_factory.mktemp("console-keys-gateway")
    key_store = copy_key_store(shared_key_store, directory / "keys", TEST_KEY_PASSWORD)
    settings = gateway_settings(
        sqlite_template.fresh(directory),
        directory,
        key_store,
        trusted_proxies=["127.0.0.1/32"],
    )
    with ThreadedGateway(settings, key_store, FixedClock()) as running:
        yield running


def _super_admin(gateway: ThreadedGateway) -> IssuedApiKey:
    assert gateway.bootstrap_key is not None
    return gateway.bootstrap_key


def _code(gateway: ThreadedGateway) -> str:
    """A TOTP code of a step not used yet, at the gateway's clock."""
    secret = _super_admin(gateway).totp_secret
    assert secret is not None
    return pyotp.TOTP(secret).at(gateway.clock.advance(seconds=30))


def _api(gateway: ThreadedGateway) -> httpx.Client:
    key = {"X-API-Key": _super_admin(gateway).api_key}
    return httpx.Client(base_url=f"{gateway.url}/api/v1", headers=key)


def _status(gateway: ThreadedGateway, version: str) -> str:
    async def read(services: Services) -> str:
        return (await services.keys.get_key(version)).record.status.value

    return gateway.call(read)


def _shred_form(page: Page, confirmation: str, code: str) -> None:
    page.get_by_label("to confirm").fill(confirmation)
    page.get_by_label("Reason").fill("end of retention for the 2025 archive")
    page.get_by_label("TOTP code").fill(code)
    page.get_by_role("button", name="Crypto-shred P-001").click()


def test_crypto_shred_with_the_typed_confirmation_then_download_the_certificate(
    console: Console, tmp_path: Path
) -> None:
    gateway = console.gateway
    with _api(gateway) as api:
        stored = api.post(
            "/backups",
            data={"classification": "INTERNAL", "source_system": "erp"},
            files={"file": ("archive.sql", b"the 2025 archive")},
        )
        assert stored.status_code == 201, stored.text
        mfa = headers(_super_admin(gateway), totp_at=gateway.clock.advance(seconds=30))
        rotated = api.post("/admin/keys/rotate", headers=mfa, json={"reason": "yearly"})
        assert rotated.status_code == 201, rotated.text
    page = console.page
    console.sign_in(_super_admin(gateway).api_key)

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Keys").click()
    expect(page.get_by_role("heading", name="Keys", level=1)).to_be_visible()
    expect(page.locator("table.keys tbody tr")).to_have_count(2)
    console.screenshot("keys")
    page.locator('a[href="/console/keys/P-001"]').click()
    expect(page.get_by_role("heading", name="Key P-001", level=1)).to_be_visible()
    expect(page.locator("dd.protected")).to_contain_text("1 (")
    console.screenshot("key")

    _shred_form(page, "DESTROY P-002", _code(gateway))  # the wrong version
    expect(page.get_by_role("alert")).to_contain_text("422 · VALIDATION_ERROR")
    assert _status(gateway, "P-001") == "RETIRED"
    assert gateway.services is not None
    assert gateway.services.key_store.has_private_key("P-001")

    _shred_form(page, "DESTROY P-001", _code(gateway))
    expect(page).to_have_url(re.compile("/console/keys/P-001$"))
    expect(page.locator("dl.fields span.status")).to_have_text("DESTROYED")
    assert _status(gateway, "P-001") == "DESTROYED"
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download the destruction certificate").click()
    saved = tmp_path / "certificate.json"
    downloading.value.save_as(saved)

    certificate = json.loads(saved.read_bytes())
    with _api(gateway) as api:
        shown = api.get("/admin/keys/P-001")
    assert certificate == shown.json()["data"]["destruction_certificate"]
    assert saved.read_text() in shown.text  # the same bytes
    trusted = public_key_from_pem(
        gateway.services.key_store.public_key_path(AUDIT_SIGNING_NAME).read_text()
    )
    assert verify_certificate(certificate, trusted).valid
    assert [b["backup_id"] for b in certificate["backups"]] == [stored.json()["data"]["backup_id"]]


def test_the_keys_pages_fit_a_phone(phone: Console) -> None:
    phone.sign_in(_super_admin(phone.gateway).api_key)
    overflow = {}
    for path in ("/keys", "/keys/P-001"):
        phone.page.goto(phone.url(path))
        overflow[path] = phone.horizontal_overflow()

    assert set(overflow.values()) == {0}, overflow
