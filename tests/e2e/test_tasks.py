"""My tasks: add one for today, tick it off (in place, by script), find it under done."""

from __future__ import annotations

import datetime as dt

from tests.e2e.conftest import expect, sign_in


def test_add_a_task_and_tick_it_off(page, live_server):
    sign_in(page, live_server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    expect(page.get_by_role("heading", name="My tasks", level=1)).to_be_visible()
    expect(page.get_by_text("0 open")).to_be_visible()

    form = page.get_by_role("region", name="New task")
    form.get_by_label("What needs doing").fill("Call Ada back")
    form.get_by_label("Due date").fill(dt.datetime.now(dt.timezone.utc).date().isoformat())
    form.get_by_label("Priority").select_option("high")
    form.get_by_role("button", name="Add task").click()

    today = page.get_by_role("region", name="Due today")
    expect(today.get_by_text("Call Ada back")).to_be_visible()
    expect(page.get_by_text("1 open")).to_be_visible()

    today.get_by_role("button", name="Mark “Call Ada back” done").click()
    expect(today.get_by_text("Call Ada back")).to_have_count(0)
    expect(page.get_by_text("0 open")).to_be_visible()

    page.reload()
    expect(page.get_by_role("region", name="Done today").get_by_text("Call Ada back")).to_be_visible()
