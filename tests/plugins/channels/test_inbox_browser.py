"""In a real Chromium: the inbox of every channel shows a website chat and an email side
by side, filters them by channel, hears a new chat live (no reload), leads to the chat's
thread, and axe-core finds no serious violation on it (screenshots in
artifacts/screenshots/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.testing import chromium_browser, serving
from tests.e2e.test_accessibility import violations
from tests.plugins.channels.test_inbox import email_in
from tests.plugins.chat.conftest import Chat, chat_settings

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the browser fixture
    expect = None  # type: ignore[assignment]

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"
PASSWORD = "inbox-e2e-pw"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser(expect_timeout_ms=8000) as chromium:
        yield chromium


@pytest.fixture
def server(crm_env: Any) -> Iterator[str]:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1", "localhost", "acme.test"], plugins=["channels", "email", "chat"],
                         settings={"email": {"from_address": "sales@acme.test", "smtp_host": "127.0.0.1", "smtp_port": 1},
                                   **chat_settings(assistant_enabled=False)})
    app = crm_env.create_app()
    with db.database.connection_context():
        auth.create_user(crm_env.tenant("acme"), "rep@acme.test", PASSWORD, role="agent", name="Rita Rep")
    with serving(app) as base_url:
        yield base_url


def _sign_in(page: Any) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill("rep@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_chat_and_email_side_by_side_filtered_by_channel_and_live(browser, server, crm_env):
    email_id = email_in(crm_env, "ada@example.com", "Quote for 40 chairs")
    chat_id = Chat(crm_env).start(name="Vera Visitor")["conversation"]["id"]
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    _sign_in(page)
    page.goto("/app/conversations/")
    expect(page.locator("[data-inbox-status]")).to_have_text("Live")
    listed = page.locator("[data-inbox-list] tbody tr")
    expect(listed).to_have_count(2)
    expect(page.locator(f'tr[data-conversation="{email_id}"]')).to_contain_text("Quote for 40 chairs")
    expect(page.locator(f'tr[data-conversation="website:{chat_id}"]')).to_contain_text("Website chat")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "inbox-every-channel.png"), full_page=True)

    page.get_by_label("Channel").select_option(label="Website chat")
    page.get_by_role("button", name="Filter").click()
    expect(listed).to_have_count(1)
    expect(listed.first).to_have_attribute("data-conversation", f"website:{chat_id}")
    page.get_by_label("Channel").select_option(label="Email")
    page.get_by_role("button", name="Filter").click()
    expect(listed).to_have_count(1)
    expect(listed.first).to_have_attribute("data-conversation", str(email_id))

    # every channel again; a new visitor's chat appears live, on top
    page.goto("/app/conversations/")
    expect(page.locator("[data-inbox-status]")).to_have_text("Live")
    Chat(crm_env).start(name="Walter Newcomer")
    expect(listed).to_have_count(3)
    expect(listed.first).to_contain_text("Walter Newcomer")
    page.screenshot(path=str(SCREENSHOTS / "inbox-every-channel-live.png"), full_page=True)

    # a chat opens in the chat's live thread; an email in the conversation page
    page.locator(f'tr[data-conversation="website:{chat_id}"] a').click()
    expect(page.locator("#chat-thread-h")).to_have_text("Vera Visitor")
    page.goto("/app/conversations/")
    page.locator(f'tr[data-conversation="{email_id}"] a').click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Quote for 40 chairs")
    page.get_by_label("Assignee").select_option(label="Rita Rep (me)")
    page.get_by_role("button", name="Assign").click()
    expect(page.get_by_text("Assigned.")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "inbox-email-conversation.png"), full_page=True)
    page.goto("/app/conversations/")
    page.get_by_role("link", name="Mine").click()
    expect(listed).to_have_count(1)
    expect(listed.first).to_have_attribute("data-conversation", str(email_id))
    assert errors == []
    context.close()

    # axe-core (its script needs the page's CSP bypassed; the pages are unchanged)
    checker = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = checker.new_page()
    _sign_in(page)
    found = {}
    for path in ("/app/conversations/", "/app/conversations/?channel=website", f"/app/conversations/{email_id}"):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        if problems := violations(page):
            found[path] = problems
    checker.close()
    assert not found, found
