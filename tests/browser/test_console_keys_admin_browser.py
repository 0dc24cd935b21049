"""The Keys, API keys and Policies pages in a real browser: crypto-shredding a retired key
version with the typed confirmation (a wrong one is refused and nothing changes), then
downloading its destruction certificate, which verifies as the API's does; creating an API key
(shown once) and revoking it; creating and updating a policy (screenshots "keys", "key",
"api-keys", "api-key-created", "api-key", "policies", "policy").

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

    page.get_by_role("navigation", name="Console").get_by_role(
        "link", name="Keys", exact=True
    ).click()
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


def test_create_and_revoke_an_api_key(console: Console) -> None:
    page = console.page
    console.sign_in(_super_admin(console.gateway).api_key)

    page.get_by_role("navigation", name="Console").get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    console.screenshot("api-keys")
    page.get_by_label("Role").select_option("admin")
    page.get_by_label("Description").fill("night shift admin")
    page.get_by_label("Department (optional)").fill("Operations")
    page.get_by_label("Allowed IPs or networks").fill("10.0.0.0/8")
    page.get_by_role("button", name="Create").click()

    expect(page.get_by_role("heading", name="API key created", level=1)).to_be_visible()
    secret = page.locator("code.secret").first.inner_text()
    assert secret.startswith("ssbg_")
    expect(page.locator("dt", has_text="TOTP secret")).to_be_visible()  # an admin is enrolled
    console.screenshot("api-key-created")
    page.get_by_role("link", name="← API keys").click()
    expect(page.locator("body")).not_to_contain_text(secret)  # never shown again
    page.get_by_role("link", name="night shift admin").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("API key")
    console.screenshot("api-key")
    page.get_by_label("Reason (optional)").fill("shift ended")
    page.get_by_label("it cannot be undone").check()
    page.get_by_role("button", name="Revoke").click()

    expect(page.locator("dl.fields span.status")).to_have_text("REVOKED")
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)
    with httpx.Client(base_url=f"{console.gateway.url}/api/v1") as api:
        refused = api.get("/me", headers={"X-API-Key": secret})
    assert refused.status_code == 401


def test_create_and_update_a_policy(console: Console) -> None:
    page = console.page
    console.sign_in(_super_admin(console.gateway).api_key)

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Policies").click()
    expect(page.get_by_role("heading", name="Policies", level=1)).to_be_visible()
    page.get_by_label("Name").fill("finance at night")
    page.get_by_label("Effect").select_option("require_mfa")
    page.get_by_label("restore").check()
    page.get_by_label("Source systems").fill("finance-*")
    page.get_by_label("UTC hours").fill("18-24")
    console.screenshot("policies")
    page.get_by_role("button", name="Create").click()

    expect(page.get_by_role("heading", name="Policy finance at night", level=1)).to_be_visible()
    expect(page.locator("dd.rule")).to_contain_text("source_systems: finance-*")
    console.screenshot("policy")
    page.get_by_label("Priority").fill("5")
    page.get_by_label("Active (evaluated)").uncheck()
    page.get_by_role("button", name="Save").click()

    expect(page.locator("dl.fields")).to_contain_text("Priority5")
    with _api(console.gateway) as api:
        [policy] = api.get("/admin/policies").json()["data"]
    assert (policy["priority"], policy["is_active"], policy["effect"]) == (5, False, "require_mfa")
    assert policy["rule"] == {
        "operations": ["restore"],
        "source_systems": ["finance-*"],
        "hours": "18-24",
    }


def test_the_new_pages_fit_a_phone(phone: Console) -> None:
    phone.sign_in(_super_admin(phone.gateway).api_key)
    overflow = {}
    for path in ("/keys", "/keys/P-001", "/api-keys", "/policies"):
        phone.page.goto(phone.url(path))
        overflow[path] = phone.horizontal_overflow()

    assert set(overflow.values()) == {0}, overflow
