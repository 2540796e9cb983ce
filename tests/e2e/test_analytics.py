"""The analytics dashboard in Chromium (the e2e package's shared browser): constructed
deals through the API, a figure checked on the page, charts drawn by the shipped
Chart.js under the page's CSP, screenshots at desktop and phone width
(artifacts/screenshots/analytics-*.png)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from crmcore import auth, db
from tests.e2e.conftest import (
    ADMIN_PASSWORD,
    DESKTOP,
    LiveServer,
    _new_context,
    _QuietHandler,
    _watched,
    expect,
    no_horizontal_overflow,
    shot,
    sign_in,
)


@pytest.fixture
def live_server(crm_env: Any) -> Iterator[LiveServer]:
    """The e2e package's server, with the analytics plugin on for tenant acme."""
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1", "localhost"], plugins=["analytics"], settings={"analytics": {"time_zone": "Europe/London"}})
    app = crm_env.create_app()
    with db.database.connection_context():
        admin = auth.create_user(crm_env.tenant("acme"), "admin@acme.test", ADMIN_PASSWORD, role="admin", name="Ada Admin")
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", crm_env, "admin@acme.test", ADMIN_PASSWORD, admin.id)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _seed(server: LiveServer) -> None:
    """Three won deals and one lost (win rate 75%), two open ones, leads from two sources."""
    stages = server.api("GET", "/pipelines")["items"][0]["stages"]
    won = next(s["id"] for s in stages if s["is_won"])
    lost = next(s["id"] for s in stages if s["is_lost"])
    second = [s["id"] for s in stages if not (s["is_won"] or s["is_lost"])][1]
    for i, value in enumerate(("1000.00", "2500.00", "1500.00", "900.00", "4000.00", "700.00")):
        deal = server.api("POST", "/deals", json={"title": f"Deal {i}", "value": value, "source": "referral", "owner_id": server.admin_id})
        if i < 3:
            server.api("PATCH", f"/deals/{deal['id']}", json={"stage_id": second})
            server.api("PATCH", f"/deals/{deal['id']}", json={"stage_id": won})
        elif i == 3:
            server.api("PATCH", f"/deals/{deal['id']}", json={"stage_id": lost, "lost_reason": "Price"})
    for i, source in enumerate(("referral", "referral", "form")):
        server.api("POST", "/leads", json={"name": f"Lead {i}", "source": source, "email": f"lead{i}@example.com"})


def test_dashboard_with_constructed_data_at_desktop_and_phone_width(page, phone, live_server):
    _seed(live_server)
    sign_in(page, live_server)
    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics", level=1)).to_be_visible()
    expect(page.locator('[data-figure="win_rate"] .figure')).to_have_text("75.0%")
    expect(page.locator('[data-figure="open_deals"] .figure')).to_have_text("2")
    funnel = page.locator("#m-funnel")
    expect(funnel.get_by_text("A deal reached a stage when it was ever in that stage")).to_be_visible()
    # Chart.js drew on the canvases (the CSP allowed the shipped script).
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length >= 5")
    shot(page, "analytics-desktop")
    expect(page.locator("#m-win-loss-reasons tbody tr").first.locator("th")).to_have_text("Price")
    expect(page.locator("#m-velocity")).to_contain_text("Velocity per day")

    # Save this view (win rate, last 30 days), set a goal, and reopen the saved report.
    page.get_by_label("Name").fill("Win rate, last 30 days")
    page.get_by_label("Metric").select_option("win-rate")
    page.get_by_label("Dates").select_option("last_30_days")
    page.get_by_role("button", name="Save this view").click()
    expect(page.locator("#saved-reports li")).to_contain_text("Win rate, last 30 days")
    page.get_by_label("Target").fill("4")
    page.get_by_label("Goal", exact=True).select_option("deals_won")
    page.get_by_label("First day").fill((dt.date.today() - dt.timedelta(days=200)).isoformat())  # a period around today
    page.get_by_label("Last day").fill((dt.date.today() + dt.timedelta(days=200)).isoformat())
    page.get_by_role("button", name="Set the goal").click()
    expect(page.locator("#m-goals tbody tr").first).to_contain_text("75.0%")
    page.locator("#saved-reports").scroll_into_view_if_needed()
    shot(page, "analytics-saved-reports", full_page=False)
    page.get_by_role("link", name="Win rate, last 30 days", exact=True).click()  # (not its Edit link)
    expect(page.locator("#f-from")).not_to_have_value("")

    page.locator("#m-win-rate tbody tr.total th a").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Win rate: Total")
    expect(page.get_by_role("link", name="Deal 0")).to_be_visible()

    sign_in(phone, live_server)
    phone.goto("/app/analytics/")
    expect(phone.locator('[data-figure="win_rate"] .figure')).to_have_text("75.0%")
    phone.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length >= 5")
    no_horizontal_overflow(phone)
    shot(phone, "analytics-phone")
    shot(phone, "analytics-phone-top", full_page=False)


def test_teams_and_editing_a_saved_report_in_the_browser(browser, live_server, request):
    """An admin adds a team on /app/admin/teams and puts themself in it; the dashboard's
    Team filter; a saved report edited in its page (a refused field first). axe-core on the
    new pages (a context without CSP, so the injected script runs); screenshots looked at:
    admin-teams.png, analytics-report-edit*.png."""
    from tests.e2e.test_accessibility import violations

    _seed(live_server)
    ctx = _new_context(browser, live_server, viewport=DESKTOP, bypass_csp=True)
    try:
        page = next(_watched(ctx.new_page(), request))
        sign_in(page, live_server)
        page.goto("/app/admin/teams/")
        page.get_by_label("Name").fill("North")
        page.get_by_role("button", name="Add team").click()
        expect(page.get_by_text("Team North added")).to_be_visible()
        page.goto(f"/app/admin/users/{live_server.admin_id}")
        page.locator("#f-team_id").select_option(label="North")
        page.get_by_role("button", name="Set team").click()
        page.goto("/app/admin/teams/")
        expect(page.locator("table")).to_contain_text("Ada Admin")
        assert violations(page) == []
        shot(page, "admin-teams", full_page=False)

        page.goto("/app/analytics/")
        page.locator("#f-team").select_option(label="North")
        page.get_by_role("button", name="Show").click()
        expect(page.locator('[data-figure="win_rate"] .figure')).to_have_text("75.0%")  # every deal is the admin's
        page.get_by_label("Name").fill("North win rate")
        page.get_by_label("Metric").select_option("win-rate")
        page.get_by_role("button", name="Save this view").click()
        page.get_by_role("link", name="Edit the report North win rate").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Edit report: North win rate")
        expect(page.locator("#e-team")).to_have_value(page.locator("#e-team option", has_text="North").get_attribute("value"))
        page.get_by_label("Rolling period").select_option("this_quarter")
        page.get_by_label("From").fill("2026-03-01")
        page.get_by_label("How often").select_option("weekly")
        page.get_by_role("button", name="Save the report").click()
        expect(page.locator("#err-recipients")).to_contain_text("at least one recipient")
        assert violations(page) == []
        shot(page, "analytics-report-edit-errors")
        page.get_by_label("Send to").select_option(label="Ada Admin")
        page.get_by_role("button", name="Save the report").click()
        expect(page.locator("#saved-reports li")).to_contain_text("this quarter")
        expect(page.locator("#saved-reports li")).to_contain_text("weekly")
    finally:
        ctx.close()
