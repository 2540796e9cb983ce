"""Editing a saved report in the page (/app/analytics/reports/<id>/edit): the form comes
filled in, saving replaces the report (dates, filters, schedule), a refused field is shown
next to its input with a 422 and nothing changes, and only the owner or an admin edits
(403; a report one cannot see is 404). On the data of conftest.py."""

from __future__ import annotations

import re

from crm_plugins.analytics.models import SavedReport
from crmcore import db


def _token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _report(world, name):
    with world.env.app.app_context(), db.database.connection_context(), db.tenant_context(world.env.tenant("acme")):
        return SavedReport.get(SavedReport.name == name)


def test_the_owner_edits_a_report_in_the_page(world):
    world.env.login(world.client, "acme", role="manager", email="boss@acme.test")
    page = world.client.get("/app/analytics/").get_data(as_text=True)
    form = {"csrf_token": _token(page), "name": "Web leads", "metric": "lead-sources", "date_from": "2026-02-01", "date_to": "2026-02-28", "source": "web"}
    assert world.client.post("/app/analytics/reports", data=form).status_code == 302
    report = _report(world, "Web leads")
    listing = world.client.get("/app/analytics/").get_data(as_text=True)
    assert f'/app/analytics/reports/{report.id}/edit' in listing

    edit_url = f"/app/analytics/reports/{report.id}/edit"
    shown = world.client.get(edit_url).get_data(as_text=True)
    assert 'value="Web leads"' in shown and 'value="2026-02-01"' in shown and 'value="web"' in shown
    assert '<option value="lead-sources" selected>' in shown

    # A refused field: the form again, with the reason beside the input; nothing saved.
    bad = world.client.post(edit_url, data={"csrf_token": _token(shown), "name": "Web leads", "metric": "lead-sources", "date_from": "2026-03-01", "date_to": "2026-02-01"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Must not be before date_from." in text and 'aria-invalid="true"' in text
    assert _report(world, "Web leads").date_from.isoformat() == "2026-02-01"

    saved = world.client.post(edit_url, data={
        "csrf_token": _token(shown), "name": "Alice's deals this quarter", "metric": "deal-size", "date_preset": "this_quarter", "date_from": "2026-02-01",
        "owner_id": str(world.users["alice"]), "shared": "on", "schedule": "monthly", "month_day": "3", "hour": "7", "recipients": [str(world.users["bob"])],
    })
    assert saved.status_code == 302
    changed = _report(world, "Alice's deals this quarter")
    assert changed.id == report.id
    assert (changed.metric, changed.date_preset, changed.date_from, changed.owner_filter, changed.source, changed.shared) == ("deal-size", "this_quarter", None, world.users["alice"], None, True)
    assert (changed.schedule, changed.month_day, changed.hour, changed.recipients) == ("monthly", 3, 7, [world.users["bob"]]) and changed.next_run_at is not None


def test_only_the_owner_or_an_admin_edits(world):
    world.env.login(world.client, "acme", role="manager", email="boss@acme.test")
    page = world.client.get("/app/analytics/").get_data(as_text=True)
    base = {"metric": "funnel"}
    world.client.post("/app/analytics/reports", data={"csrf_token": _token(page), "name": "Shared funnel", "shared": "on", **base})
    world.client.post("/app/analytics/reports", data={"csrf_token": _token(page), "name": "Private funnel", **base})
    shared, private = _report(world, "Shared funnel"), _report(world, "Private funnel")

    other = world.env.client("acme")
    world.env.login(other, "acme", role="manager", email="other@acme.test")
    assert other.get(f"/app/analytics/reports/{shared.id}/edit").status_code == 403
    assert other.get(f"/app/analytics/reports/{private.id}/edit").status_code == 404
    listing = other.get("/app/analytics/").get_data(as_text=True)
    assert "Shared funnel" in listing and f"/reports/{shared.id}/edit" not in listing

    admin = world.env.client("acme")
    world.env.login(admin, "acme", role="admin", email="root@acme.test")
    shown = admin.get(f"/app/analytics/reports/{shared.id}/edit")
    assert shown.status_code == 200
    renamed = admin.post(f"/app/analytics/reports/{shared.id}/edit", data={"csrf_token": _token(shown.get_data(as_text=True)), "name": "Funnel (checked)", "metric": "funnel", "shared": "on"})
    assert renamed.status_code == 302 and _report(world, "Funnel (checked)").owner_id == shared.owner_id
