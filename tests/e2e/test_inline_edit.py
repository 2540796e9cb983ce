"""Inline editing in Chromium: a rep changes a lead's status in place, cancels an edit
with Escape, meets a colleague's change (412) and saves theirs over it, at desktop and
phone width; axe finds nothing critical or serious with an edit open."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.e2e.conftest import (
    DESKTOP,
    MOBILE,
    _new_context,
    _watched,
    expect,
    no_horizontal_overflow,
    shot,
    sign_in,
)
from tests.e2e.test_accessibility import violations


@pytest.fixture
def axe_page(browser: Any, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    ctx = _new_context(browser, live_server, viewport=DESKTOP, bypass_csp=True)
    try:
        yield from _watched(ctx.new_page(), request)
    finally:
        ctx.close()


def test_edit_in_place_cancel_and_a_colleagues_change(axe_page, live_server):
    page = axe_page
    lead = live_server.api("POST", "/leads", json={"name": "Grace Hopper", "status": "new", "email": "grace@navy.example"})
    sign_in(page, live_server)
    page.goto(f"/app/leads/{lead['id']}")
    details = page.get_by_role("region", name="Details", exact=True)
    status = details.locator('[data-inline="status"]')

    details.get_by_role("button", name="Edit status").click()
    expect(details.get_by_label("Status", exact=True)).to_be_focused()
    details.get_by_label("Status", exact=True).select_option("qualified")
    assert violations(page) == []
    shot(page, "inline-edit-open")
    details.get_by_role("button", name="Save").click()
    expect(status.locator(".inline-value")).to_have_text("qualified")
    expect(details.get_by_role("button", name="Edit status")).to_be_visible()

    # Escape leaves the value as it was and gives the focus back to the button.
    details.get_by_role("button", name="Edit email").click()
    details.get_by_label("Email", exact=True).fill("typo@")
    page.keyboard.press("Escape")
    expect(details.get_by_role("button", name="Edit email")).to_be_focused()
    expect(details.locator('[data-inline="email"] .inline-value')).to_have_text("grace@navy.example")

    # A colleague changes the lead; this page still has the old version.
    live_server.api("PATCH", f"/leads/{lead['id']}", json={"priority": "high"})
    details.get_by_role("button", name="Edit priority").click()
    details.get_by_label("Priority", exact=True).select_option("low")
    details.get_by_role("button", name="Save").click()
    alert = details.get_by_role("alert")
    expect(alert).to_contain_text("Someone else changed this lead while you were editing. Priority is now “high”.")
    expect(details.get_by_label("Priority", exact=True)).to_have_attribute("aria-invalid", "true")
    shot(page, "inline-edit-conflict")
    alert.get_by_role("button", name="Save mine anyway").click()
    expect(details.locator('[data-inline="priority"] .inline-value')).to_have_text("low")
    assert live_server.api("GET", f"/leads/{lead['id']}")["priority"] == "low"

    page.set_viewport_size(MOBILE)
    page.reload()
    details.get_by_role("button", name="Edit owner").click()
    no_horizontal_overflow(page)
    assert violations(page) == []
    shot(page, "inline-edit-phone")
