"""axe-core (tests/e2e/vendor/axe-core, a test asset) on the core's main pages in
Chromium: no "critical" or "serious" violation on the dashboard, the record lists and
pages, tasks, search and the admin pages (with a validation error shown, too), and a few
of them again at phone width."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import DESKTOP, MOBILE, _new_context, _watched, expect, shot, sign_in

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"

#: (name, path) visited in order; {lead} etc.: the seeded records' ids
PAGES = [
    ("dashboard", "/app/"),
    ("leads", "/app/leads/"),
    ("lead", "/app/leads/{lead}"),
    ("lead-new", "/app/leads/new"),
    ("contacts", "/app/contacts/"),
    ("contact", "/app/contacts/{contact}"),
    ("companies", "/app/companies/"),
    ("company", "/app/companies/{company}"),
    ("deals", "/app/deals/"),
    ("deal", "/app/deals/{deal}"),
    ("tasks", "/app/tasks/"),
    ("search", "/app/search/?q=globex"),
    ("admin", "/app/admin/"),
    ("admin-users", "/app/admin/users/"),
    ("admin-teams", "/app/admin/teams/"),
    ("admin-tokens", "/app/admin/tokens/"),
    ("admin-pipelines", "/app/admin/pipelines/"),
    ("admin-custom-fields", "/app/admin/custom-fields/"),
    ("admin-plugins", "/app/admin/plugins/"),
    ("admin-core-settings", "/app/admin/plugins/core/"),
]

BLOCKING = ("critical", "serious")
#: checked at phone width too
PHONE_PAGES = ("dashboard", "leads", "deal", "tasks")


@pytest.fixture
def axe_page(browser: Any, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A desktop page that may run axe: the page's Content-Security-Policy would refuse the
    injected script, so this context bypasses CSP (the app's pages are unchanged)."""
    ctx = _new_context(browser, live_server, viewport=DESKTOP, bypass_csp=True)
    try:
        yield from _watched(ctx.new_page(), request)
    finally:
        ctx.close()


def violations(page: Any) -> list[str]:
    """axe's critical and serious violations on the page, one line per rule and node."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    out = []
    for rule in result["violations"]:
        if rule["impact"] not in BLOCKING:
            continue
        for node in rule["nodes"][:5]:
            out.append(f"{rule['impact']} {rule['id']}: {' '.join(node['target'])}: {node['failureSummary'].splitlines()[-1].strip()} ({rule['help']})")
    return out


def test_main_pages_have_no_serious_accessibility_violations(axe_page, live_server):
    page = axe_page
    ids = live_server.seed()
    # Tasks in every state the tasks page and the dashboard colour differently.
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    live_server.api("POST", "/tasks", json={"title": "Call back Grace", "lead_id": ids["lead"], "due_at": (now - dt.timedelta(days=2)).isoformat(), "priority": "high", "assignee_id": live_server.admin_id})
    live_server.api("POST", "/tasks", json={"title": "Prepare the demo", "due_at": now.isoformat(), "priority": "low", "assignee_id": live_server.admin_id})
    done = live_server.api("POST", "/tasks", json={"title": "Send the brochure", "due_at": now.isoformat(), "assignee_id": live_server.admin_id})
    live_server.api("PATCH", f"/tasks/{done['id']}", json={"status": "done"})
    sign_in(page, live_server)
    found: dict[str, list[str]] = {}
    for name, path in PAGES:
        page.goto(path.format(**ids))
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        problems = violations(page)
        if problems:
            found[name] = problems
    # At phone width the header and lists fold differently: a few pages again.
    page.set_viewport_size(MOBILE)
    for name, path in PAGES:
        if name in PHONE_PAGES:
            page.goto(path.format(**ids))
            if problems := violations(page):
                found[f"phone-{name}"] = problems
    shot(page, "a11y-phone-tasks")
    page.set_viewport_size(DESKTOP)
    # A form showing its validation errors (the settings form of the core, refused).
    page.goto("/app/admin/plugins/core/")
    page.get_by_label("Default currency").fill("euro")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".field-error").first).to_be_visible()
    if problems := violations(page):
        found["admin-settings-errors"] = problems
    shot(page, "a11y-settings-errors", full_page=False)
    report = "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in found.items())
    assert not found, "axe-core found critical or serious violations:\n" + report
