"""Saved reports: CRUD with permissions, running one (fixed days and rolling presets, on
the data of conftest.py), and "Save this view" on the dashboard page."""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace

from crm_plugins.analytics import filters, reports
from crm_plugins.analytics.models import SavedReport
from crmcore import auth, db

API = "/api/v1/analytics/reports"


def _auth(world, role):
    """A token of a new user of that role (saved reports are a user's)."""
    with world.env.app.app_context(), db.database.connection_context():
        acme = world.env.tenant("acme")
        user = auth.create_user(acme, f"{role}-{len(role)}{id(world)}@acme.test", "secret-pw", role=role)
        return {"Authorization": f"Bearer {auth.create_token(acme, role, user=user)[1]}"}


def test_preset_ranges_are_local_calendar_days():
    today = dt.date(2026, 2, 14)
    assert filters.preset_range("last_7_days", today) == (dt.date(2026, 2, 8), today)
    assert filters.preset_range("last_month", today) == (dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert filters.preset_range("this_quarter", today) == (dt.date(2026, 1, 1), today)
    assert filters.preset_range("last_quarter", today) == (dt.date(2025, 10, 1), dt.date(2025, 12, 31))
    assert filters.preset_range("this_year", dt.date(2026, 5, 3)) == (dt.date(2026, 1, 1), dt.date(2026, 5, 3))
    assert filters.preset_range("last_year", today) == (dt.date(2025, 1, 1), dt.date(2025, 12, 31))


def test_fiscal_quarters_and_years_start_in_the_fiscal_start_month():
    # A fiscal year from 1 April: 14 Feb 2026 is in Q4 of the year 2025-04-01 .. 2026-03-31.
    today = dt.date(2026, 2, 14)
    assert filters.preset_range("this_quarter", today, 4) == (dt.date(2026, 1, 1), today)
    assert filters.preset_range("last_quarter", today, 4) == (dt.date(2025, 10, 1), dt.date(2025, 12, 31))
    assert filters.preset_range("this_year", today, 4) == (dt.date(2025, 4, 1), today)
    assert filters.preset_range("last_year", today, 4) == (dt.date(2024, 4, 1), dt.date(2025, 3, 31))
    # From 1 November: quarters Nov-Jan, Feb-Apr ...; 14 Feb starts the second one.
    assert filters.preset_range("this_quarter", today, 11) == (dt.date(2026, 2, 1), today)
    assert filters.preset_range("last_quarter", today, 11) == (dt.date(2025, 11, 1), dt.date(2026, 1, 31))
    assert filters.preset_range("this_year", dt.date(2026, 10, 31), 11) == (dt.date(2025, 11, 1), dt.date(2026, 10, 31))
    assert filters.preset_range("this_year", dt.date(2026, 11, 1), 11) == (dt.date(2026, 11, 1), dt.date(2026, 11, 1))


def test_a_preset_filter_uses_the_tenants_fiscal_year(crm_env):
    crm_env.write_tenant("acme", plugins=["analytics"], settings={"analytics": {"time_zone": "Europe/Berlin", "fiscal_year_start_month": 7}})
    crm_env.create_app()
    with crm_env.app.app_context(), db.database.connection_context(), db.tenant_context(crm_env.tenant("acme")):
        f = filters.parse({"date_preset": "this_year"})
        today = dt.datetime.now(filters.zoneinfo.ZoneInfo("Europe/Berlin")).date()
        assert (f.date_from, f.date_to) == (dt.date(today.year if today.month >= 7 else today.year - 1, 7, 1), today)
    client = crm_env.client("acme")
    headers = {"Authorization": f"Bearer {crm_env.token('acme', 'admin')}"}
    both = client.get("/api/v1/analytics/deal-size", query_string={"date_preset": "this_year", "date_from": "2026-01-01"}, headers=headers)
    assert both.status_code == 422 and "date_preset" in both.get_json()["errors"]["query"]
    assert client.get("/api/v1/analytics/deal-size", query_string={"date_preset": "next_year"}, headers=headers).status_code == 422


def test_save_run_share_and_permissions(world):
    agent, manager, admin = _auth(world, "agent"), _auth(world, "manager"), _auth(world, "admin")
    body = {"name": "Feb win rate", "metric": "win-rate", "date_from": "2026-02-01", "date_to": "2026-02-28"}
    created = world.client.post(API, json=body, headers=agent)
    assert created.status_code == 201, created.get_json()
    mine = created.get_json()
    assert (mine["shared"], mine["schedule_status"]) == (False, "none")
    # Running it gives the metric's figures for its filters: in February (New York days)
    # Alice won D1, Bob lost D2 and won D5 (28 February local).
    ran = world.client.get(f"{API}/{mine['id']}/run", headers=agent).get_json()
    rows = {r["label"]: r["values"] for r in ran["rows"]}
    assert (rows["Alice"]["won"], rows["Bob"]["won"], rows["Bob"]["lost"]) == (1, 1, 1)
    # Personal: the manager does not see it; once shared, everyone sees it but only the owner or an admin changes it.
    assert world.client.get(f"{API}/{mine['id']}", headers=manager).status_code == 404
    assert [r["id"] for r in world.client.get(API, headers=manager).get_json()["items"]] == []
    assert world.client.put(f"{API}/{mine['id']}", json={**body, "shared": True}, headers=agent).status_code == 200
    assert [r["name"] for r in world.client.get(API, headers=manager).get_json()["items"]] == ["Feb win rate"]
    assert world.client.get(f"{API}/{mine['id']}/run", headers=manager).status_code == 200
    assert world.client.delete(f"{API}/{mine['id']}", headers=manager).status_code == 403
    assert world.client.delete(f"{API}/{mine['id']}", headers=admin).status_code == 204
    assert world.client.get(f"{API}/{mine['id']}", headers=agent).status_code == 404


def test_rolling_preset_is_resolved_when_the_report_runs(world):
    created = world.client.post(API, json={"name": "Quarterly forecast", "metric": "forecast", "grouping": "quarter", "date_preset": "this_quarter"}, headers=_auth(world, "manager")).get_json()
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(world.env.tenant("acme")):
        report = SavedReport.get_by_id(created["id"])
        args = reports.filter_args(report, today=dt.date(2026, 2, 20))
        assert (args["date_from"], args["date_to"], args["period"]) == (dt.date(2026, 1, 1), dt.date(2026, 2, 20), "quarter")
        size = reports.run(SavedReport(metric="deal-size", date_preset="last_30_days", grouping="default"), today=dt.date(2026, 3, 1))
    # 31 January - 1 March local: D1 (1000, Alice) and D5 (700, Bob) were won.
    assert {r["label"]: str(r["values"]["won_value"]) for r in size["rows"] if not r["total"]} == {"Alice": "1000.00", "Bob": "700.00"}


def test_bad_reports_are_422_and_schedules_wait_for_the_email_plugin(world):
    userless = world.client.post(API, json={"name": "x", "metric": "funnel"}, headers=world.headers)
    assert userless.status_code == 422 and "user" in userless.get_json()["errors"]["json"]
    admin = _auth(world, "admin")
    bad = world.client.post(API, json={"name": "", "metric": "nope", "date_preset": "someday"}, headers=admin)
    assert bad.status_code == 422 and {"name", "metric", "date_preset"} <= set(bad.get_json()["errors"]["json"])
    both = world.client.post(API, json={"name": "x", "metric": "funnel", "date_preset": "today", "date_from": "2026-01-01", "grouping": "quarter"}, headers=admin)
    assert both.status_code == 422 and {"date_preset", "grouping"} <= set(both.get_json()["errors"]["json"])
    unscheduled = world.client.post(API, json={"name": "x", "metric": "funnel", "schedule": "weekly"}, headers=admin)
    assert {"hour", "weekday", "recipients"} <= set(unscheduled.get_json()["errors"]["json"])
    stranger = world.client.post(API, json={"name": "x", "metric": "funnel", "schedule": "monthly", "month_day": 1, "hour": 8, "recipients": [999999]}, headers=admin)
    assert stranger.status_code == 422 and "recipients" in stranger.get_json()["errors"]["json"]
    weekly = world.client.post(API, json={"name": "Weekly funnel", "metric": "funnel", "schedule": "weekly", "weekday": 0, "hour": 8, "recipients": [world.users["alice"]]}, headers=admin).get_json()
    assert weekly["schedule_status"] == "needs the email plugin"
    # 08:00 on a Monday in New York is 13:00 UTC (EST) or 12:00 UTC (EDT).
    next_run = dt.datetime.fromisoformat(weekly["next_run_at"])
    assert next_run.weekday() == 0 and next_run.hour in (12, 13)
    assert world.env.client("beta").get(API, headers={"Authorization": f"Bearer {world.env.token('beta', 'admin')}"}).status_code == 404


def test_next_occurrence_in_the_tenants_time_zone():
    report = SimpleNamespace(schedule="monthly", weekday=None, month_day=1, hour=0)  # a report's schedule fields
    # 1 March 00:00 in New York is 05:00 UTC; asked just before it, and just after.
    assert reports.next_occurrence(report, dt.datetime(2026, 3, 1, 4, 59), "America/New_York") == dt.datetime(2026, 3, 1, 5, 0)
    assert reports.next_occurrence(report, dt.datetime(2026, 3, 1, 5, 0), "America/New_York") == dt.datetime(2026, 4, 1, 4, 0)  # EDT since 8 March


def test_save_this_view_on_the_page_reopens_with_its_filters(world):
    world.env.login(world.client, "acme", role="manager")
    page = world.client.get("/app/analytics/?date_from=2026-02-01&date_to=2026-02-28&source=web").get_data(as_text=True)
    assert "Save this view" in page and "No saved reports yet" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    saved = world.client.post("/app/analytics/reports", data={"csrf_token": token, "name": "Web leads in Feb", "metric": "lead-sources", "date_from": "2026-02-01", "date_to": "2026-02-28", "source": "web", "shared": "on"})
    assert saved.status_code == 302
    page = world.client.get("/app/analytics/").get_data(as_text=True)
    link = re.search(r'<li data-report="(\d+)"><a href="([^"]+)">Web leads in Feb</a>', page)
    assert link and "shared" in page
    reopened = link.group(2).replace("&amp;", "&")
    assert "date_from=2026-02-01" in reopened and "date_to=2026-02-28" in reopened and "source=web" in reopened and reopened.endswith("#m-lead-sources")
    # The reopened view shows the filtered figures: web leads created in February local (L3 only; L4 is 28 Feb local too).
    shown = world.client.get(reopened.split("#")[0]).get_data(as_text=True)
    assert 'value="web"' in shown
    token = re.search(r'name="csrf_token" value="([^"]+)"', shown).group(1)
    assert world.client.post(f"/app/analytics/reports/{link.group(1)}/delete", data={"csrf_token": token}).status_code == 302
    assert "No saved reports yet" in world.client.get("/app/analytics/").get_data(as_text=True)


def test_a_schedule_set_on_the_page_waits_for_the_email_plugin(world):
    world.env.login(world.client, "acme", role="manager")
    page = world.client.get("/app/analytics/").get_data(as_text=True)
    assert "emailed once the email plugin is on" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "name": "Monday funnel", "metric": "funnel", "date_preset": "last_7_days", "schedule": "weekly", "weekday": "0", "hour": "8", "month_day": "1"}
    refused = world.client.post("/app/analytics/reports", data=form, follow_redirects=True).get_data(as_text=True)
    assert "The report was not saved" in refused and "recipient" in refused
    saved = world.client.post("/app/analytics/reports", data={**form, "recipients": [str(world.users["alice"])]}, follow_redirects=True).get_data(as_text=True)
    assert "Monday funnel" in saved and "weekly: needs the email plugin" in saved
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(world.env.tenant("acme")):
        report = SavedReport.get(SavedReport.name == "Monday funnel")
        assert (report.schedule, report.weekday, report.month_day, report.hour, report.recipients, report.date_preset) == ("weekly", 0, None, 8, [world.users["alice"]], "last_7_days")
