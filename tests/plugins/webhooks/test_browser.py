"""The webhooks page in a real Chromium: add an endpoint, see its secret once, send a test
event, run the worker, see the delivery in the log (screenshot in artifacts/screenshots/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.testing import chromium_browser, serving
from tests.plugins.webhooks.conftest import drain

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the browser fixture
    expect = None  # type: ignore[assignment]

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"
PASSWORD = "webhooks-e2e-pw"



@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def server(crm_env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("CRM_WEBHOOKS_ALLOW_PRIVATE", "1")
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1", "localhost"], plugins=["webhooks"])
    app = crm_env.create_app()
    with db.database.connection_context():
        auth.create_user(crm_env.tenant("acme"), "ada@acme.test", PASSWORD, role="admin", name="Ada Admin")
    with serving(app) as base_url:
        yield base_url


def test_add_an_endpoint_see_the_secret_once_and_a_test_event_in_the_log(browser, server, crm_env, receiver):
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)  # CSP violations
    page.goto("/login")
    page.get_by_label("Email").fill("ada@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto("/app/webhooks/")
    expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Description").fill("Our ERP")
    page.locator('input[name="event_types"][value="deal_stage_changed"]').check()
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("[data-secret]").inner_text()
    assert secret.startswith("whsec_")
    receiver.secrets.append(secret)
    page.get_by_role("link", name="Done").click()
    expect(page.locator("[data-endpoint]")).to_have_count(1)
    assert secret not in page.content()
    page.get_by_role("button", name="Send a test event").click()
    expect(page.get_by_role("heading", name="Delivery log")).to_be_visible()
    drain(crm_env)
    page.reload()
    row = page.locator("[data-delivery]").first
    expect(row).to_have_attribute("data-status", "delivered")
    expect(row).to_contain_text("webhook_test")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "webhooks-log.png"), full_page=True)
    assert receiver.requests[0]["verified"] == {secret: True}
    assert errors == []
    context.close()
