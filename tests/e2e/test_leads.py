"""A lead's life in the browser: created through the form (after an inline error), a
note added on its page, converted with a deal, found again by searching the list."""

from __future__ import annotations

import re

from tests.e2e.conftest import expect, flash, shot, sign_in


def test_create_note_convert_and_find_a_lead(page, live_server):
    live_server.api("POST", "/leads", json={"name": "Grace Hopper", "email": "grace@navy.example", "company_name": "US Navy"})
    sign_in(page, live_server)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Leads").click()
    expect(page.get_by_role("heading", name="Leads", level=1)).to_be_visible()
    page.get_by_role("link", name="New lead").click()
    expect(page).to_have_url(re.compile(r"/app/leads/new$"))

    # An address the browser lets through but the server refuses: the error is inline.
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Email").fill("ada@analytical")
    page.get_by_label("Phone").fill("+44 20 7946 0018")
    page.get_by_label("Company").fill("Analytical Engines Ltd")
    page.get_by_label("Source").select_option("referral")
    page.get_by_role("button", name="Create lead").click()
    expect(page.get_by_role("alert").filter(has_text="Please correct the highlighted fields")).to_be_visible()
    email = page.get_by_label("Email")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#email-error")).to_be_visible()
    expect(email).to_have_accessible_description(re.compile(r"\w"))  # the message is tied to the field
    expect(page.get_by_label("Name")).to_have_value("Ada Lovelace")  # nothing typed is lost
    expect(page.get_by_label("Source")).to_have_value("referral")
    shot(page, "lead-form-errors")

    email.fill("ada@analytical.example")
    page.get_by_role("button", name="Create lead").click()
    expect(page).to_have_url(re.compile(r"/app/leads/\d+$"))
    lead_url = page.url
    expect(page.get_by_role("heading", name="Ada Lovelace", level=1)).to_be_visible()
    details = page.get_by_role("region", name="Details", exact=True)
    expect(details).to_contain_text("ada@analytical.example")
    expect(details).to_contain_text("Analytical Engines Ltd")
    expect(details).to_contain_text("referral")

    # A note, added on the lead's page, shows on its timeline.
    page.get_by_label("Note", exact=True).fill("Wants the difference engine demo on Tuesday.")
    page.get_by_role("button", name="Add note").click()
    expect(flash(page, "Note added.")).to_be_visible()
    timeline = page.get_by_role("region", name="Timeline", exact=True)
    expect(timeline).to_contain_text("Wants the difference engine demo on Tuesday.")
    shot(page, "lead-detail")

    # Convert it, with a deal.
    page.get_by_role("link", name="Convert…").click()
    expect(page.get_by_role("heading", name="Convert Ada Lovelace")).to_be_visible()
    expect(page.get_by_label("Also create a deal")).to_be_checked()
    page.get_by_label("Deal title").fill("Ada: difference engine")
    page.get_by_label("Value").fill("25000")
    shot(page, "lead-convert")
    page.get_by_role("button", name="Convert lead").click()
    expect(flash(page, "Lead “Ada Lovelace” converted: contact created, company created, deal “Ada: difference engine” created.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/app/deals/\d+$"))
    expect(page.get_by_role("heading", name="Ada: difference engine", level=1)).to_be_visible()
    shot(page, "deal-detail")

    page.goto(lead_url)
    expect(page.locator(".subtitle")).to_contain_text("converted")
    expect(page.get_by_role("link", name="Convert…")).to_have_count(0)
    converted = page.get_by_role("region", name="Converted", exact=True)
    expect(converted.get_by_role("link", name="Ada: difference engine")).to_be_visible()
    converted.get_by_role("listitem").filter(has_text="Contact").get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/app/contacts/\d+$"))
    expect(page.get_by_role("heading", name="Ada Lovelace", level=1)).to_be_visible()
    shot(page, "contact-detail")

    # Found again by searching the lead list; the other lead is filtered out.
    page.goto("/app/leads/")
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(3)  # header + 2 leads
    search = page.get_by_role("search", name="Search and filter leads").get_by_label("Search")
    search.fill("lovelace")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"[?&]q=lovelace"))
    expect(rows).to_have_count(2)
    found = page.get_by_role("table").get_by_role("link", name="Ada Lovelace")
    expect(found).to_be_visible()
    expect(page.get_by_role("table")).not_to_contain_text("Grace Hopper")
    expect(search).to_have_value("lovelace")
    shot(page, "leads-search")
    found.click()
    expect(page).to_have_url(lead_url)

    # The dashboard counts what happened: one lead left open (Grace; Ada is converted),
    # one open deal worth 25,000 EUR, weighted by the first stage's 10 %.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    summary = page.get_by_role("region", name="Summary")

    def figure(title: str):
        return summary.locator(".stat").filter(has=page.get_by_role("heading", name=title, exact=True))

    expect(figure("Open leads").locator(".figure")).to_have_text("1")
    expect(figure("Open deals").locator(".figure")).to_have_text("1")
    expect(figure("Pipeline value")).to_contain_text("25,000 EUR")
    expect(figure("Pipeline value")).to_contain_text("weighted 2,500 EUR")
    expect(figure("My tasks")).to_contain_text("0 due today")
    shot(page, "dashboard-figures")
    figure("Open leads").get_by_role("link", name="1").click()  # the figure opens the list behind it
    expect(page.get_by_role("heading", name="Leads", level=1)).to_be_visible()
    expect(page.get_by_role("table").get_by_role("link", name="Grace Hopper")).to_be_visible()
    expect(page.get_by_role("table")).not_to_contain_text("Ada Lovelace")


def test_fill_the_lead_form_with_the_keyboard_only(page, live_server):
    sign_in(page, live_server)
    page.goto("/app/leads/new")
    for _ in range(40):  # from the top of the page to the first field
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.name") == "name":
            break
    expect(page.get_by_label("Name")).to_be_focused()
    page.keyboard.type("Charles Babbage")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type("charles@engines.example")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Phone")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Company")).to_be_focused()
    page.keyboard.type("Engines & Co")
    page.keyboard.press("Enter")  # submits the form from any text field
    expect(page.get_by_role("heading", name="Charles Babbage", level=1)).to_be_visible()
    expect(page.get_by_role("region", name="Details", exact=True)).to_contain_text("Engines & Co")
