"""In a real Chromium: the editor's pickers. A step that sends an email template or calls
a webhook offers the tenant's templates and endpoints as a list, by name (nobody types
an id), and the page passes axe-core (screenshot in artifacts/screenshots/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.testing import chromium_browser, serving
from tests.plugins.automation.conftest import FAST

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the browser fixture
    expect = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
AXE = ROOT / "tests" / "e2e" / "vendor" / "axe-core" / "axe.min.js"
PASSWORD = "automation-pickers-pw"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def server(crm_env: Any) -> Iterator[str]:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1", "localhost"],
                         plugins=["automation", "channels", "email", "webhooks"], settings={"automation": FAST})
    app = crm_env.create_app()
    with db.database.connection_context():
        auth.create_user(crm_env.tenant("acme"), "ada@acme.test", PASSWORD, role="admin", name="Ada Admin")
    with serving(app) as base_url:
        yield base_url


def _in_acme(crm_env: Any) -> Any:
    from contextlib import ExitStack

    stack = ExitStack()
    stack.enter_context(crm_env.app.app_context())
    stack.enter_context(db.connection())
    stack.enter_context(db.tenant_context(crm_env.tenant("acme")))
    return stack


def test_template_and_endpoint_are_chosen_from_lists(browser: Any, server: str, crm_env: Any) -> None:
    from crm_plugins.automation.models import AutomationRule
    from crm_plugins.channels.models import MessageTemplate
    from crm_plugins.webhooks.models import WebhookEndpoint

    with _in_acme(crm_env):
        template = MessageTemplate.create(name="Follow-up", subject="Still interested?", body="Hello", channel="email")
        MessageTemplate.create(name="Text reminder", subject="", body="Hi", channel="sms")  # not an email template
        endpoint = WebhookEndpoint.create(url="https://hooks.example.test/crm", description="Billing", event_types=[], secret="whsec_test")
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 1000}, bypass_csp=True)  # axe is injected
    context.set_default_timeout(8000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/login")
    page.get_by_label("Email").fill("ada@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto("/app/automation/new")
    page.get_by_label("Name").fill("Follow up and tell billing")
    first = page.locator("[data-step-row]").first
    first.get_by_label("Action").select_option("send_template")
    picker = first.locator('[data-param="template_id"] select')
    expect(picker).to_be_visible()
    assert picker.locator("option").all_text_contents() == ["(choose)", "Follow-up"]
    picker.select_option(label="Follow-up")
    page.get_by_role("button", name="Add a step").click()
    second = page.locator("[data-step-row]").last
    second.get_by_label("Action").select_option("call_webhook")
    second.locator('[data-param="endpoint_id"] select').select_option(label="Billing (https://hooks.example.test/crm)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    blocking = [f"{v['id']}: {v['help']}" for v in result["violations"] if v["impact"] in ("critical", "serious")]
    assert blocking == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "automation-pickers.png"), full_page=True)
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("[data-status]")).to_have_text("draft")
    with _in_acme(crm_env):
        [rule] = list(AutomationRule.select())
        assert [(s["action"], s["params"].get("template_id"), s["params"].get("endpoint_id")) for s in rule.steps] == [
            ("send_template", template.id, None), ("call_webhook", None, endpoint.id)]
    # the saved rule's editor shows the choices selected
    page.goto(f"/app/automation/{rule.id}/edit")
    expect(page.locator('[data-step-row] [data-param="template_id"] select').first).to_have_value(str(template.id))
    assert errors == []
    context.close()
