"""In a real Chromium: build a rule in the editor (rows added with the buttons, no JSON),
test it, activate it, see its run notify the user, whose bell counts up live
(screenshots in artifacts/screenshots/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.testing import chromium_browser, serving
from tests.plugins.automation.conftest import FAST, drain

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the browser fixture
    expect = None  # type: ignore[assignment]

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"
PASSWORD = "automation-e2e-pw"



@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def server(crm_env: Any) -> Iterator[str]:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1", "localhost"], plugins=["automation"], settings={"automation": FAST})
    app = crm_env.create_app()
    with db.database.connection_context():
        auth.create_user(crm_env.tenant("acme"), "ada@acme.test", PASSWORD, role="admin", name="Ada Admin")
    with serving(app) as base_url:
        yield base_url


def test_build_test_and_activate_a_rule_and_the_bell_counts_its_notification(browser: Any, server: str, crm_env: Any) -> None:
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(8000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto("/login")
    page.get_by_label("Email").fill("ada@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Automation").first.click()
    page.get_by_role("link", name="New rule").click()
    page.get_by_label("Name").fill("Notify me of web leads")
    page.get_by_role("button", name="Add a condition").click()
    row = page.locator("[data-condition-row]").last
    row.get_by_label("Field").select_option("source")
    row.get_by_label("Value").fill("form")
    step = page.locator("[data-step-row]").first
    step.get_by_label("Action").select_option("notify")
    expect(step.locator('[data-param="due_in_days"]')).to_be_hidden()  # only the chosen action's params
    step.locator('[data-param="title"] input').fill("Web lead: {name}")
    page.locator('input[name="exit_on"][value="lead_converted"]').check()  # "Stop when": an exit condition
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "automation-editor.png"), full_page=True)
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("[data-status]")).to_have_text("draft")
    with crm_env.app.app_context(), db.connection(), db.tenant_context(crm_env.tenant("acme")):
        from crm_plugins.automation.models import AutomationRule

        assert [(r.name, r.exit_on) for r in AutomationRule.select()] == [("Notify me of web leads", ["lead_converted"])]
    with crm_env.app.app_context(), db.connection(), db.tenant_context(crm_env.tenant("acme")):
        from crmcore.models import User
        from crmcore.sdk import Lead, create_record, current_tenant

        owner = User.get(User.email == "ada@acme.test")
        create_record(Lead, {"name": "Early", "source": "form", "owner": owner.id})
        assert current_tenant() is not None
    page.get_by_role("link", name="Test this rule").click()
    expect(page.locator("[data-dry-result]")).to_contain_text("1 of the 1 most recent leads match")
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("[data-status]")).to_have_text("active")
    expect(page.locator("[data-bell]")).to_have_attribute("data-live", "1")
    with crm_env.app.app_context(), db.connection(), db.tenant_context(crm_env.tenant("acme")):
        create_record(Lead, {"name": "Grace", "source": "form", "owner": owner.id})
    drain(crm_env)
    expect(page.locator("[data-bell-count]")).to_have_text("1")  # live, no reload
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "automation-rule.png"), full_page=True)
    page.locator("[data-bell]").click()
    expect(page.locator(".notif.unread")).to_contain_text("Web lead: Grace")
    page.screenshot(path=str(SCREENSHOTS / "notifications.png"), full_page=True)
    assert errors == []
    context.close()
