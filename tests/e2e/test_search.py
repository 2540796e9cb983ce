"""The header's global search in Chromium, by keyboard only: "/" focuses it, suggestions
appear as one types, arrows and Enter open one, Esc closes the list, Enter without a
choice opens the results page."""

from __future__ import annotations

from tests.e2e.conftest import expect, shot, sign_in


def test_global_search_by_keyboard(page, live_server):
    ids = live_server.seed()
    sign_in(page, live_server)
    page.goto("/app/tasks/")
    page.keyboard.press("/")
    box = page.get_by_role("combobox", name="Quick find")
    expect(box).to_be_focused()
    page.keyboard.type("globex")
    listbox = page.get_by_role("listbox", name="Suggestions")
    expect(listbox).to_be_visible()
    expect(listbox.get_by_role("option")).to_have_count(4)  # company, contact (via email), deal, "all results"
    expect(box).to_have_attribute("aria-expanded", "true")
    shot(page, "search-suggestions", full_page=False)

    page.keyboard.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_attribute("aria-expanded", "false")

    page.keyboard.press("ArrowDown")  # reopens the list on its first suggestion
    expect(listbox).to_be_visible()
    expect(listbox.get_by_role("option", selected=True)).to_contain_text("Hank Scorpio")
    page.keyboard.press("ArrowDown")
    expect(listbox.get_by_role("option", selected=True)).to_contain_text("Globex Corporation")
    page.keyboard.press("ArrowUp")
    expect(box).to_have_attribute("aria-activedescendant", "gs-0-0")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/app/contacts/{ids['contact']}")

    page.keyboard.press("/")
    page.keyboard.type("grace")
    expect(listbox.get_by_role("option").first).to_contain_text("Grace Hopper")
    page.keyboard.press("Enter")  # nothing chosen: the results page
    expect(page).to_have_url(f"{live_server.url}/app/search/?q=grace")
    expect(page.get_by_role("heading", level=1)).to_have_text("Results for “grace”")
    expect(page.get_by_role("link", name="Grace Hopper")).to_be_visible()
