"""Saved views in Chromium: a rep filters the leads, saves the view for everyone, changes
its sort and updates it, opens it at phone width and deletes it; axe finds nothing
critical or serious on the list with the view's bar open, at either width."""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import (
    DESKTOP,
    MOBILE,
    _new_context,
    _watched,
    expect,
    flash,
    no_horizontal_overflow,
    shot,
    sign_in,
)
from tests.e2e.test_accessibility import violations


@pytest.fixture
def axe_page(browser: Any, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A desktop page that may run axe (CSP bypassed for the injected script only)."""
    ctx = _new_context(browser, live_server, viewport=DESKTOP, bypass_csp=True)
    try:
        yield from _watched(ctx.new_page(), request)
    finally:
        ctx.close()


def lead_names(page: Any) -> list[str]:
    return page.locator("table.records td.primary-cell a").all_inner_texts()


def test_save_update_open_on_a_phone_and_delete_a_view(axe_page, live_server):
    page = axe_page
    for name, status in [("Grace Hopper", "new"), ("Alan Turing", "qualified"), ("Ada Lovelace", "new")]:
        live_server.api("POST", "/leads", json={"name": name, "status": status})
    sign_in(page, live_server)

    page.goto("/app/leads/")
    page.get_by_label("Status").select_option("new")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.records tbody tr")).to_have_count(2)

    views = page.get_by_role("navigation", name="Saved views of leads")
    page.get_by_text("Save as a view…").click()  # the summary opens the form
    page.get_by_label("Name of the new view").fill("New leads")
    page.get_by_label("Share with everyone").check()
    page.get_by_role("button", name="Save view").click()
    expect(flash(page, "View “New leads” saved for everyone.")).to_be_visible()
    current = views.get_by_role("link", name=re.compile("New leads"))
    expect(current).to_have_attribute("aria-current", "page")
    page.get_by_text("Save as a view…").click()
    expect(page.get_by_role("button", name="Update “New leads” with these filters")).to_be_disabled()

    # Sorted by name instead: the view offers to keep that.
    page.get_by_role("link", name="Name", exact=True).click()
    expect(page.get_by_text("Filters changed: save?")).to_be_visible()
    assert lead_names(page) == ["Ada Lovelace", "Grace Hopper"]
    assert violations(page) == []
    shot(page, "saved-views-modified")
    page.get_by_role("button", name="Update “New leads” with these filters").click()
    expect(flash(page, "View “New leads” updated.")).to_be_visible()

    # Back to all leads, then the view again from its tab: filtered and sorted.
    views.get_by_role("link", name="All leads").click()
    expect(page.locator("table.records tbody tr")).to_have_count(3)
    views.get_by_role("link", name=re.compile("New leads")).click()
    assert lead_names(page) == ["Ada Lovelace", "Grace Hopper"]
    shot(page, "saved-views-desktop")

    page.set_viewport_size(MOBILE)
    page.reload()
    expect(views.get_by_role("link", name=re.compile("New leads"))).to_have_attribute("aria-current", "page")
    page.get_by_text("Save as a view…").click()
    no_horizontal_overflow(page)
    assert violations(page) == []
    shot(page, "saved-views-phone")
    page.get_by_role("button", name="Delete view “New leads”").click()
    expect(flash(page, "View “New leads” deleted.")).to_be_visible()
    expect(views.get_by_role("link")).to_have_count(1)
