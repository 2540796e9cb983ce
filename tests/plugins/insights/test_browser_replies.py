"""In headless Chromium: a contact's panel shows the sentiment of its email
conversations; "Draft a reply" queues a draft that the panel offers in an editable form
sending through the conversation's reply (screenshot in artifacts/insights/, axe-core)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.testing import chromium_browser, drain_tasks, in_tenant, serving

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the browser fixture
    expect = None  # type: ignore[assignment]

SHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "insights"
AXE = Path(__file__).resolve().parents[2] / "e2e" / "vendor" / "axe-core" / "axe.min.js"
PASSWORD = "insights-e2e-pw"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser(expect_timeout_ms=5000) as chromium:
        yield chromium


@pytest.fixture
def server(crm_env: Any) -> Iterator[Any]:
    email = {"from_address": "sales@acme.test", "smtp_host": "127.0.0.1", "smtp_port": 2525, "smtp_security": "none"}
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1"], plugins=["insights", "channels", "email"],
                         settings={"insights": {"debounce_seconds": 0}, "email": email})
    app = crm_env.create_app()
    with db.database.connection_context():
        auth.create_user(crm_env.tenant("acme"), "manager@acme.test", PASSWORD, role="manager", name="Mia Manager")
    with serving(app) as url:
        yield url, crm_env


def test_conversation_sentiment_and_reply_draft(browser, server):
    import crm_plugins.channels.contrib as channels
    from crmcore.sdk import Contact, create_record

    url, env = server
    with in_tenant(env) as tenant:
        ann = create_record(Contact, {"first_name": "Ann", "last_name": "Angry", "email": "ann@example.com"})
        channels.receive(tenant, "email", address="ann@example.com", subject="Wrong invoice", message_id="<m1@x>",
                         body_text="The invoice is wrong again. We are very disappointed and need a corrected invoice this week.")
    drain_tasks(env)
    # CSP would refuse the injected axe script: this context bypasses it (the pages are unchanged)
    ctx = browser.new_context(base_url=url, locale="en-GB", viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    page.goto("/login")
    page.get_by_label("Email").fill("manager@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/app/contacts/{ann.id}")
    conversation = page.locator(".insights-conversations li").first
    expect(conversation).to_contain_text("Wrong invoice")
    expect(conversation).to_contain_text("negative")
    conversation.get_by_role("button", name="Draft a reply").click()
    expect(page.locator(".insights-panel").get_by_text("Reply draft requested, being written")).to_be_visible()
    drain_tasks(env)
    page.reload()
    draft = page.get_by_label("Reply draft")
    expect(draft).to_have_value(page.locator(".insights-reply textarea").input_value())
    assert "sorry for the trouble" in draft.input_value()
    draft.fill(draft.input_value().replace("Hello,", "Hello Ann,"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "contact-reply-draft.png"), full_page=True, animations="disabled")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document.querySelector('.insights-panel'), {resultTypes: ['violations']})")
    assert [v["id"] for v in result["violations"] if v["impact"] in ("critical", "serious")] == []
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_text("Reply queued.")).to_be_visible()  # the channels plugin's own reply
    with in_tenant(env):
        sent = [m for m in channels.messages_of("contact", ann.id) if m.direction == "out"]
        assert len(sent) == 1 and sent[0].body_text.startswith("Hello Ann,")
    assert errors == []
