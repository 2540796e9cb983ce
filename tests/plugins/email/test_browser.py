"""In a real Chromium: write an email from a lead's page; it shows on the lead's timeline
at once and, once the worker sent it (to aiosmtpd), as sent in the Email panel
(screenshot in artifacts/screenshots/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.testing import chromium_browser, serving
from tests.plugins.channels.conftest import drain, email_settings, make_lead

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the browser fixture
    expect = None  # type: ignore[assignment]

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"
PASSWORD = "email-e2e-pw"



@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def server(crm_env: Any, smtp: Any) -> Iterator[str]:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1", "localhost"], plugins=["channels", "email"],
                         settings={"email": email_settings(smtp.port)})
    app = crm_env.create_app()
    with db.database.connection_context():
        auth.create_user(crm_env.tenant("acme"), "rep@acme.test", PASSWORD, role="agent", name="Rita Rep")
    with serving(app) as base_url:
        yield base_url


def test_compose_from_a_lead_page_and_see_it_on_the_timeline(browser, server, crm_env, smtp):
    lead = make_lead(crm_env, "Ada Lovelace", email="ada@example.com")
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(8000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto("/login")
    page.get_by_label("Email").fill("rep@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/app/leads/{lead.id}")
    form = page.locator("form[data-compose]")
    expect(form.get_by_label("To")).to_have_value("ada@example.com")
    form.get_by_label("Subject").fill("Our offer")
    form.get_by_label("Message").fill("Hello Ada, here is our offer.")
    form.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Email queued.")).to_be_visible()
    entry = page.locator("[data-live-timeline] li.tl-activity").first
    expect(entry).to_contain_text("Email · outbound")
    expect(entry).to_contain_text("Our offer")
    drain(crm_env)
    assert [m["Subject"] for m in smtp.accepted] == ["Our offer"]
    page.reload()
    expect(page.locator('[data-email-message][data-status="sent"]')).to_contain_text("Our offer")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "email-lead-compose.png"), full_page=True)
    page.locator("[data-email-message] a").first.click()  # its conversation, with the reply box
    expect(page.get_by_role("heading", name="Our offer", level=1)).to_be_visible()
    expect(page.locator('[data-message][data-status="sent"]')).to_contain_text("Hello Ada, here is our offer.")
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "email-conversation.png"), full_page=True)
    assert errors == []
    context.close()


def test_set_a_signature_and_find_the_urgent_box_without_serious_accessibility_violations(browser, server, crm_env):
    from tests.e2e.test_accessibility import violations

    lead = make_lead(crm_env, "Grace Hopper", email="grace@example.com")
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900}, bypass_csp=True)  # axe is injected
    context.set_default_timeout(8000)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill("rep@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/app/leads/{lead.id}")
    form = page.locator("form[data-compose]")
    expect(form.get_by_role("checkbox", name="Urgent (sent even in the recipient's quiet hours)")).not_to_be_checked()
    assert violations(page) == []
    form.get_by_role("link", name="Your signature").click()
    expect(page.get_by_role("heading", name="Your email signature", level=1)).to_be_visible()
    page.get_by_label("Signature").fill("Rita Rep\nAcme Sales")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Your signature is saved.")).to_be_visible()
    expect(page.get_by_label("Signature")).to_have_value("Rita Rep\nAcme Sales")
    assert violations(page) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "email-signature.png"), full_page=True)
    context.close()
