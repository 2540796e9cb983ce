"""Every main page renders for an admin at desktop width (leaving a screenshot in
artifacts/screenshots/ to look at) and at phone width without scrolling sideways."""

from __future__ import annotations

from tests.e2e.conftest import expect, no_horizontal_overflow, shot, sign_in

#: (screenshot name, path ({lead} etc.: the seeded records' ids), main heading)
PAGES = [
    ("dashboard", "/app/", "Dashboard"),
    ("leads", "/app/leads/", "Leads"),
    ("lead", "/app/leads/{lead}", "Grace Hopper"),
    ("lead-new", "/app/leads/new", "New lead"),
    ("contacts", "/app/contacts/", "Contacts"),
    ("contact", "/app/contacts/{contact}", "Hank Scorpio"),
    ("companies", "/app/companies/", "Companies"),
    ("company", "/app/companies/{company}", "Globex Corporation"),
    ("deals", "/app/deals/", "Deals"),
    ("deal", "/app/deals/{deal}", "Globex doomsday device"),
    ("tasks", "/app/tasks/", "Tasks"),
    ("admin", "/app/admin/", "Admin"),
    ("admin-users", "/app/admin/users/", "Users"),
    ("admin-tokens", "/app/admin/tokens/", "API tokens"),
    ("admin-pipelines", "/app/admin/pipelines/", "Pipelines"),
    ("admin-custom-fields", "/app/admin/custom-fields/", "Custom fields"),
    ("admin-plugins", "/app/admin/plugins/", "Plugins"),
]


#: at phone width, screenshots of these only (the others are checked, not pictured)
PHONE_SHOTS = {"dashboard", "leads", "lead", "lead-new", "deal", "tasks"}


def visit_all(page, live_server, prefix: str, shots: set[str] | None = None) -> None:
    ids = live_server.seed()
    sign_in(page, live_server)
    for name, path, heading in PAGES:
        page.goto(path.format(**ids))
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading, ignore_case=True)
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        no_horizontal_overflow(page)
        if shots is None or name in shots:
            shot(page, f"{prefix}{name}")


def test_main_pages_at_desktop_width(page, live_server):
    visit_all(page, live_server, "")


def test_main_pages_at_phone_width(phone, live_server):
    visit_all(phone, live_server, "mobile-", PHONE_SHOTS)


def test_sign_in_and_navigate_on_a_phone(phone, live_server):
    phone.goto("/login")
    no_horizontal_overflow(phone)
    shot(phone, "mobile-login")
    sign_in(phone, live_server)
    expect(phone.get_by_role("button", name="Sign out")).to_be_in_viewport()
    nav = phone.get_by_role("navigation", name="Main")
    links = nav.get_by_role("link")
    expect(links).not_to_have_count(0)
    for link in links.all():
        expect(link).to_be_in_viewport()
    nav.get_by_role("link", name="Leads").tap()
    expect(phone.get_by_role("heading", name="Leads", level=1)).to_be_visible()
    no_horizontal_overflow(phone)
