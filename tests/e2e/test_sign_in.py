"""Signing in and out in a real browser, with the mouse and with the keyboard only."""

from __future__ import annotations

import re

from tests.e2e.conftest import expect, flash, shot, sign_in


def test_wrong_password_then_right_one_then_sign_out(page, live_server):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "login")

    page.get_by_label("Email").fill(live_server.admin_email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page.get_by_label("Email")).to_have_value(live_server.admin_email)  # kept, password not
    expect(page.get_by_label("Password")).to_have_value("")
    shot(page, "login-error")

    page.get_by_label("Password").fill(live_server.admin_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/app/$"))
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text("Ada Admin")
    shot(page, "dashboard")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(flash(page, "You are signed out.")).to_be_visible()
    page.goto("/app/")  # the session is really gone
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_a_deep_link_survives_signing_in(page, live_server):
    page.goto("/app/?from=bookmark")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Email").fill(live_server.admin_email)
    page.get_by_label("Password").fill(live_server.admin_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/app/\?from=bookmark$"))


def test_sign_in_with_the_keyboard_only(page, live_server):
    page.goto("/login")
    expect(page.get_by_label("Email")).to_be_focused()  # autofocus: type straight away
    page.keyboard.type(live_server.admin_email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(live_server.admin_password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()

    # The skip link is the first stop on every page and jumps over the navigation.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    # ... and signing out is reachable by tabbing too.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.textContent.trim()") == "Sign out":
            break
    expect(page.get_by_role("button", name="Sign out")).to_be_focused()
    page.keyboard.press("Enter")
    expect(flash(page, "You are signed out.")).to_be_visible()


def test_an_agent_sees_no_admin_pages(page, live_server):
    email = live_server.create_user("agent", name="Alex Agent")
    sign_in(page, live_server, email=email)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Leads")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)
    response = page.goto("/app/admin/")
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_contain_text("403")
