"""In a real Chromium: a rep texts a lead from its page (the segment counter counts as
they type), the worker sends it to the loopback provider, and the lead's reply arrives
on the lead's timeline live; WhatsApp's window and templates in the composer (with
axe-core); an inbound text arriving live in the inbox (screenshots in
artifacts/screenshots/)."""

from __future__ import annotations

import re
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


AXE = Path(__file__).resolve().parents[2] / "e2e" / "vendor" / "axe-core" / "axe.min.js"


def sign_in(context: Any) -> Any:
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill("rep@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    return page


def serious_violations(page: Any) -> list[str]:
    """axe-core's critical and serious violations (as tests/e2e/test_accessibility.py)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [f"{rule['id']}: {' '.join(node['target'])}" for rule in result["violations"]
            if rule["impact"] in ("critical", "serious") for node in rule["nodes"][:5]]


def test_whatsapp_composer_shows_the_window_and_offers_only_templates_once_it_has_closed(browser, server, crm_env, provider):
    lead = make_lead(crm_env, "Ada Lovelace", phone="07911 123456")
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 1200})
    context.set_default_timeout(8000)
    page = sign_in(context)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"/app/leads/{lead.id}")
    form = page.locator("form[data-sms-compose]")
    expect(form.locator("[data-whatsapp-only]")).to_be_hidden()  # SMS: no window, no WhatsApp templates
    form.get_by_label("Channel").select_option("whatsapp")
    # the customer never wrote: the window is closed, free text is gone, a template is chosen
    expect(form.locator("[data-wa-window]")).to_contain_text("closed: only an approved template can be sent")
    expect(form.get_by_label("Message")).to_be_hidden()
    expect(form.get_by_label("Approved WhatsApp template")).to_have_value("appointment_reminder")
    expect(form.locator('[data-wa-variables="appointment_reminder"]')).to_contain_text("Hello {{1}}, your appointment is on {{2}}")
    form.get_by_label("First name ({{1}})").fill("Ada")
    form.get_by_label("Date and time ({{2}})").fill("Friday 10:00")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "sms-whatsapp-window-closed.png"), full_page=True)
    form.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Text queued.")).to_be_visible()
    drain(crm_env)
    assert [(m["To"], m["ContentSid"], m["ContentVariables"]) for m in provider.sent] == [
        ("whatsapp:+447911123456", "HX0123456789abcdef0123456789abcdef", '{"1": "Ada", "2": "Friday 10:00"}')]
    # the customer answers: the window opens for 24 hours, free text is offered again
    Callbacks(crm_env).inbound("whatsapp:+447911123456", "Can we make it 11?", "SMwa-in-1", ProfileName="Ada")
    page.reload()
    page.get_by_text("Write a text").click()  # folded once the record has texts
    form.get_by_label("Channel").select_option("whatsapp")
    expect(form.locator("[data-wa-window]")).to_contain_text(re.compile(r"open until .* UTC \(23 h 5\d min left\)"))
    expect(form.get_by_label("Message")).to_be_visible()
    # another number (never wrote): asked again when the number changes
    form.get_by_label("To").fill("+447400123456")
    form.get_by_label("To").dispatch_event("change")
    expect(form.locator("[data-wa-window]")).to_contain_text("closed")
    expect(form.get_by_label("Message")).to_be_hidden()
    form.get_by_label("To").fill("07911 123456")
    form.get_by_label("To").dispatch_event("change")
    expect(form.locator("[data-wa-window]")).to_contain_text("open until")
    form.get_by_label("Approved WhatsApp template").select_option("")
    form.get_by_label("Message").fill("Yes, 11 is fine.")
    page.screenshot(path=str(SCREENSHOTS / "sms-whatsapp-window-open.png"), full_page=True)
    form.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Text queued.")).to_be_visible()
    drain(crm_env)
    assert provider.sent[-1]["Body"] == "Yes, 11 is fine." and "ContentSid" not in provider.sent[-1]
    assert errors == []
    context.close()
    # axe-core on the composer with WhatsApp chosen (a context that lets the script in)
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 1200}, bypass_csp=True)
    page = sign_in(context)
    page.goto(f"/app/leads/{lead.id}")
    page.get_by_text("Write a text").click()
    page.locator("form[data-sms-compose]").get_by_label("Channel").select_option("whatsapp")
    assert serious_violations(page) == []
    context.close()


def test_an_inbound_sms_arrives_live_in_the_inbox(browser, server, crm_env, provider):
    """The inbox is open when a text (with a photo) comes from a number nobody has: the
    new conversation appears in the list live (no reload), and shows the text and the
    photo's link."""
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(8000)
    page = sign_in(context)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto("/app/conversations/")
    expect(page.get_by_text("No conversation yet.")).to_be_visible()
    expect(page.locator("[data-inbox-status]")).to_have_text("Live")  # subscribed before the text comes
    photo = f"{provider.url}/2010-04-01/Accounts/AC1/Messages/MM9/Media/ME9"
    Callbacks(crm_env).inbound("+447400123456", "Is the blue sofa still available?", "SMlive1", NumMedia="1",
                               MediaUrl0=photo, MediaContentType0="image/jpeg")
    row = page.locator("tr[data-conversation]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("+447400123456")
    expect(row).to_contain_text("SMS")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "sms-inbox-live.png"), full_page=True)
    row.get_by_role("link").click()
    message = page.locator('[data-message][data-status="received"]')
    expect(message).to_contain_text("Is the blue sofa still available?")
    expect(message.get_by_role("link", name="image/jpeg 1")).to_have_attribute("href", photo)
    page.screenshot(path=str(SCREENSHOTS / "sms-inbox-conversation.png"), full_page=True)
    assert errors == []
    context.close()
