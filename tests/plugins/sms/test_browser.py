"""In a real Chromium: a rep texts a lead from its page (the segment counter counts as
they type), the worker sends it to the loopback provider, and the lead's reply arrives
on the lead's timeline live (screenshot in artifacts/screenshots/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.testing import chromium_browser, serving
from tests.plugins.channels.conftest import drain
from tests.plugins.sms.conftest import AUTH_TOKEN, Callbacks, make_lead, sms_settings

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the browser fixture
    expect = None  # type: ignore[assignment]

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"
PASSWORD = "sms-e2e-pw"



@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def server(crm_env: Any, provider: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SMS_TEST_AUTH_TOKEN", AUTH_TOKEN)
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1", "localhost", "acme.test"], plugins=["channels", "sms"],
                         settings={"sms": sms_settings(provider)})
    app = crm_env.create_app()
    with db.database.connection_context():
        auth.create_user(crm_env.tenant("acme"), "rep@acme.test", PASSWORD, role="agent", name="Rita Rep")
    with serving(app) as base_url:
        yield base_url


def test_text_a_lead_with_the_segment_counter_and_see_the_reply_live(browser, server, crm_env, provider):
    lead = make_lead(crm_env, "Ada Lovelace", phone="07911 123456")
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
    form = page.locator("form[data-sms-compose]")
    expect(form.get_by_label("To")).to_have_value("07911 123456")
    counter = form.locator("[data-sms-counter]")
    form.get_by_label("Message").fill("a" * 161)
    expect(counter).to_contain_text("161 characters, 2 segments (GSM-7")
    form.get_by_label("Message").fill("Zażółć — see you at 10?")
    expect(counter).to_have_attribute("data-encoding", "UCS-2")
    expect(counter).to_contain_text("1 segment (UCS-2")
    form.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Text queued.")).to_be_visible()
    drain(crm_env)
    assert [(m["To"], m["Body"]) for m in provider.sent] == [("+447911123456", "Zażółć — see you at 10?")]
    page.reload()
    expect(page.locator('[data-sms-message][data-status="sent"]')).to_contain_text("Zażółć")
    Callbacks(crm_env).inbound("+447911123456", "Yes, 10 works for me", "SMreply1")
    expect(page.locator("[data-live-timeline]")).to_contain_text("Yes, 10 works for me", timeout=10000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "sms-lead-compose.png"), full_page=True)
    assert errors == []
    context.close()
