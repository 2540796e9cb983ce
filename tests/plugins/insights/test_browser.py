"""In headless Chromium: the insights dashboard, then "Create task" on a suggested action
(screenshots in artifacts/insights/)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from crmcore import auth, db
from crmcore.testing import chromium_browser

from .test_dashboard import _story

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the browser fixture
    expect = None  # type: ignore[assignment]

SHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "insights"
PASSWORD = "insights-e2e-pw"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser(expect_timeout_ms=5000) as chromium:
        yield chromium


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


@pytest.fixture
def server(crm_env: Any) -> Iterator[Any]:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1"], plugins=["insights"], settings={"insights": {"debounce_seconds": 0}})
    app = crm_env.create_app()
    with db.database.connection_context():
        auth.create_user(crm_env.tenant("acme"), "manager@acme.test", PASSWORD, role="manager", name="Mia Manager")
    httpd = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", crm_env
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()


def test_dashboard_and_create_task(browser, server):
    url, env = server
    _ann, _lead, stuck = _story(env)
    ctx = browser.new_context(base_url=url, locale="en-GB", viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    page.goto("/login")
    page.get_by_label("Email").fill("manager@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Insights", exact=True).first.click()
    expect(page.get_by_role("heading", name="Insights", level=1)).to_be_visible()
    risky = page.locator(f'#insights-at-risk li[data-deal="{stuck}"]')
    expect(risky.get_by_text("In Negotiation for 40 days (expected 14)")).to_be_visible()
    expect(page.locator('.insights-bands [data-band="red"]')).to_have_text("red: 1")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True, animations="disabled")

    action = page.locator(f'#insights-due [data-entity="deal"][data-record="{stuck}"][data-action="call_to_unblock"]')
    action.get_by_role("button", name="Create task").click()
    expect(page.get_by_text("Task created.")).to_be_visible()
    expect(action).to_have_count(0)  # not suggested again while snoozed
    page.goto(f"/app/deals/{stuck}")
    expect(page.get_by_text("Call to move it on").first).to_be_visible()  # the task, on the timeline
    panel = page.locator(".insights-panel")
    expect(panel.get_by_text("In Negotiation for 40 days (expected 14)")).to_be_visible()
    expect(panel.get_by_text("No open next task")).to_have_count(0)  # reassessed with the new task
    page.screenshot(path=str(SHOTS / "deal-page.png"), full_page=True, animations="disabled")
    assert errors == []
