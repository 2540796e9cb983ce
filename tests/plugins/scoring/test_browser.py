"""In headless Chromium: the lead page's score panel and the admin page's preview and save
(screenshots in artifacts/scoring/)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from crmcore import auth, db
from crmcore.testing import chromium_browser

from .conftest import days_ago, in_tenant, make_deal, make_lead

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the browser fixture
    expect = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "artifacts" / "scoring"
PASSWORD = "scoring-e2e-pw"




@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser(expect_timeout_ms=5000) as chromium:
        yield chromium


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


@pytest.fixture
def server(crm_env: Any) -> Iterator[Any]:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1"], plugins=["scoring"], settings={"scoring": {"debounce_seconds": 0}})
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


def _page(browser: Any, url: str, **options: Any) -> Any:
    ctx = browser.new_context(base_url=url, locale="en-GB", **options)
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)  # CSP violations
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    page.errors = errors
    return page


def _sign_in(page: Any) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill("manager@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, animations="disabled")


def test_lead_panel_and_admin_preview(browser, server):
    from crm_plugins.scoring import engine
    from crmcore.entities import service

    url, env = server
    with in_tenant(env) as tenant:
        hot = make_lead(name="Grace Hopper", status="new", budget="50k", need="Fleet CRM")
        engine.rescore(tenant)
        service.update(hot, {"status": "qualified", "last_contact_at": days_ago(1)})
        make_deal(hot, 60, 80000)
        engine.rescore(tenant)
        for i in range(6):
            make_lead(name=f"Prospect {i}", status=("new", "contacted", "qualified")[i % 3], estimated_value=str(20000 * i))
        engine.rescore(tenant)

    page = _page(browser, url, viewport={"width": 1280, "height": 900})
    _sign_in(page)
    widget = page.locator('section[aria-labelledby="w-scoring-grades"]')
    expect(widget.get_by_role("link", name="Grace Hopper")).to_be_visible()
    _shot(page, "dashboard-widget")
    page.goto(f"/app/leads/{hot.id}")
    panel = page.locator('[data-panel="scoring"]')
    expect(panel.get_by_role("heading", name="Lead score")).to_be_visible()
    expect(panel.locator(".scoring-big")).to_have_text("80")  # deal 60 + value 10 + contact 5 + 2 BANT fields 5
    expect(panel.get_by_text("Value 80,000 above 50,000")).to_be_visible()
    expect(panel.locator("svg.scoring-spark")).to_be_visible()
    _shot(page, "lead-panel")

    # The core lead list: a Score column (crm_list_columns), sorted from its header, filtered by grade.
    page.get_by_role("link", name="Leads", exact=True).first.click()
    cells = page.locator('td[data-column="scoring:score"]')
    expect(cells).to_have_count(7)
    page.get_by_role("link", name="Score", exact=True).click()  # ascending first
    expect(page.get_by_role("columnheader", name="Score")).to_have_attribute("aria-sort", "ascending")
    page.get_by_role("link", name="Score", exact=True).click()  # then descending
    expect(page.get_by_role("columnheader", name="Score")).to_have_attribute("aria-sort", "descending")
    names = page.locator("td.primary-cell a")
    expect(names.first).to_have_text("Grace Hopper")
    expect(cells.first.locator(".grade")).to_have_text("A")
    expect(names.nth(1)).to_have_text("Prospect 5")
    _shot(page, "lead-list-scores")
    page.get_by_label("Grade").select_option("C")
    page.get_by_role("button", name="Apply").click()
    expect(names).to_have_text(["Prospect 5", "Prospect 2"])  # grade C, still best first
    expect(page.get_by_role("columnheader", name="Score")).to_have_attribute("aria-sort", "descending")  # the sort is kept
    _shot(page, "lead-list-grade-c")

    page.get_by_role("link", name="Scoring").click()
    expect(page.get_by_role("heading", name="Lead scoring", level=1)).to_be_visible()
    expect(page.locator("#model").get_by_text("Rules alone", exact=True)).to_be_visible()
    page.get_by_label("Base (classic rules)").fill("0.5")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview.get_by_role("heading", name="Preview: effect on 7 leads")).to_be_visible()
    expect(preview.get_by_text("Nothing is saved yet")).to_be_visible()
    # The form keeps the edited value, so Save applies what was previewed.
    expect(page.get_by_label("Base (classic rules)")).to_have_value("0.5")
    after_a = preview.locator('tr[data-grade="A"] td[data-after]')
    expect(after_a).to_have_text("0")
    _shot(page, "admin-preview")
    page.get_by_role("button", name="Save and rescore").click()
    expect(page.get_by_role("status").filter(has_text="7 leads rescored")).to_be_visible()
    page.get_by_label("Grade B from").fill("95")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("must be lower than A")).to_be_visible()
    _shot(page, "admin-error")

    phone = _page(browser, url, viewport={"width": 390, "height": 800}, is_mobile=True, has_touch=True)
    _sign_in(phone)
    phone.goto("/app/scoring/")
    widths = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    _shot(phone, "admin-phone")
    phone.goto(f"/app/leads/{hot.id}")
    _shot(phone, "lead-panel-phone")
    phone.goto("/app/leads/?sort=-scoring:score")
    expect(phone.locator("td.primary-cell a").first).to_have_text("Grace Hopper")  # 42.5 C after the base weight 0.5
    _shot(phone, "lead-list-phone")
    assert not page.errors and not phone.errors, page.errors + phone.errors
