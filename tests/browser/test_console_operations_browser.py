"""The Alerts and Incident pages in a real browser: acknowledging an alert, and the incident
page (screenshots "alerts" and "incident")."""

import re

import httpx
from playwright.sync_api import expect

from ssbg.services.container import Services
from tests.browser.conftest import Console
from tests.support.audit import audit_entries
from tests.support.threaded_gateway import ThreadedGateway


def _bootstrap_key(gateway: ThreadedGateway) -> str:
    assert gateway.bootstrap_key is not None
    return gateway.bootstrap_key.api_key


def _raise_m9(gateway: ThreadedGateway, name: str) -> str:
    """A policy change over the JSON API, which raises alert M9; its id."""
    key = {"X-API-Key": _bootstrap_key(gateway)}
    with httpx.Client(base_url=f"{gateway.url}/api/v1", headers=key) as api:
        created = api.post(
            "/admin/policies", json={"name": name, "effect": "deny", "is_active": False, "rule": {}}
        )
        assert created.status_code == 201, created.text
        listed = api.get("/admin/alerts", params={"rule_id": "M9"}).json()["data"]
    [alert_id] = [a["alert_id"] for a in listed if a["context"]["name"] == name]
    return str(alert_id)


def _acks_of(gateway: ThreadedGateway, alert_id: str) -> list[str]:
    async def read(services: Services) -> list[str]:
        entries = await audit_entries(services.db, "ALERT_ACK")
        return [str(e.actor_id) for e in entries if e.resource == f"alert:{alert_id}"]

    return gateway.call(read)


def test_acknowledge_an_alert(console: Console) -> None:
    alert_id = _raise_m9(console.gateway, "browser-ack")
    page = console.page
    console.sign_in(_bootstrap_key(console.gateway))

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", name="Alerts", level=1)).to_be_visible()
    console.screenshot("alerts")
    page.locator(f'a[href="/console/alerts/{alert_id}"]').click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(alert_id)
    page.get_by_label("Note (optional)").first.fill("on it")
    page.get_by_role("button", name="Acknowledge").click()

    expect(page).to_have_url(re.compile(f"/console/alerts/{alert_id}$"))
    expect(page.locator("dl.fields span.status").first).to_have_text("ACKNOWLEDGED")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.get_by_role("button", name="Investigate")).to_be_visible()
    assert console.gateway.bootstrap_key is not None
    assert _acks_of(console.gateway, alert_id) == [str(console.gateway.bootstrap_key.record.id)]

    page.get_by_role("link", name="Incident").click()
    expect(page.get_by_role("heading", name="Incident", level=1)).to_be_visible()
    expect(page.locator(".card .figure")).to_have_text("1 · ALERT")  # raised by the alert
    expect(page.get_by_label("TOTP code")).to_be_visible()
    console.screenshot("incident")


def test_the_alert_and_incident_pages_fit_a_phone(phone: Console) -> None:
    alert_id = _raise_m9(phone.gateway, "browser-phone")
    phone.sign_in(_bootstrap_key(phone.gateway))
    overflow = {}
    for path in ("/alerts", f"/alerts/{alert_id}", "/incident"):
        phone.page.goto(phone.url(path))
        overflow[path] = phone.horizontal_overflow()

    assert set(overflow.values()) == {0}, overflow
