"""In Chromium, at desktop and phone width, with axe-core: an admin invites a colleague
by email (system mail to aiosmtpd), the colleague sets a password through the link on a
phone, signs in, opens their profile from the header and changes their time zone; the
"forgot password" page. Screenshots in artifacts/screenshots/accounts-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from crmcore import auth, db
from crmcore.testing import drain_tasks, serving
from tests.e2e.conftest import DESKTOP, MOBILE, expect, shot
from tests.e2e.test_accessibility import violations
from tests.plugins.channels.conftest import SmtpServer

PASSWORD = "accounts-e2e-pw"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def server(crm_env: Any, smtp: SmtpServer) -> Iterator[str]:
    """One server for this module's one test: tenant acme on 127.0.0.1 with system mail."""
    crm_env.write_instance(mail={"host": "127.0.0.1", "port": smtp.port, "security": "none", "from_address": "crm@example.org"})
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1"])
    app = crm_env.create_app()
    with db.database.connection_context():
        auth.create_user(crm_env.tenant("acme"), "admin@example.org", PASSWORD, role="admin", name="Ada Admin")
    with serving(app) as base_url:
        yield base_url


def new_page(browser: Any, base_url: str, viewport: dict[str, int], errors: list[str], **options: Any) -> Any:
    # bypass_csp: axe is injected as a script (the app's pages are unchanged)
    context = browser.new_context(base_url=base_url, viewport=viewport, bypass_csp=True, **options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"JavaScript error on {page.url}: {exc}"))
    page.on("response", lambda r: errors.append(f"{r.status} from {r.url}") if r.status >= 500 else None)
    return page


def sign_in(page: Any, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


def test_invite_set_a_password_on_a_phone_and_change_the_profile(browser, server, crm_env, smtp):
    errors: list[str] = []
    found: dict[str, list[str]] = {}
    admin = new_page(browser, server, DESKTOP, errors)
    sign_in(admin, "admin@example.org", PASSWORD)
    admin.goto("/app/admin/users/")
    admin.get_by_role("link", name="Invite by email").click()
    expect(admin.get_by_label("Email")).to_be_focused()  # focus lands in the first field
    found["invite-form"] = violations(admin)
    admin.get_by_label("Email").fill("nia@example.org")
    admin.get_by_label("Name").fill("Nia Newcomer")
    admin.get_by_label("Role").select_option("manager")
    admin.get_by_role("button", name="Send invitation").click()
    expect(admin.get_by_role("status").filter(has_text="Invitation sent to nia@example.org")).to_be_visible()
    drain_tasks(crm_env)
    [mail] = smtp.accepted
    link = re.search(r"http://127\.0\.0\.1:\d+(/account/invite/\S+)", mail.get_content()).group(1)

    phone = new_page(browser, server, MOBILE, errors, is_mobile=True, has_touch=True)
    phone.goto(link)
    expect(phone.get_by_role("heading", name="Welcome, Nia Newcomer")).to_be_visible()
    expect(phone.get_by_role("textbox", name="Password", exact=True)).to_be_focused()
    found["phone-set-password"] = violations(phone)
    phone.get_by_role("textbox", name="Password", exact=True).fill("short")
    phone.get_by_label("Password again").fill("short")
    phone.get_by_role("button", name="Set password").click()
    expect(phone.locator(".field-error")).to_contain_text("At least 8 characters")
    found["phone-set-password-error"] = violations(phone)
    shot(phone, "accounts-phone-set-password-error")
    phone.get_by_role("textbox", name="Password", exact=True).fill("nia-chosen-pw")
    phone.get_by_label("Password again").fill("nia-chosen-pw")
    phone.get_by_role("button", name="Set password").click()
    expect(phone.get_by_role("status").filter(has_text="Your password is set")).to_be_visible()
    sign_in(phone, "nia@example.org", "nia-chosen-pw")
    phone.get_by_role("link", name=re.compile("Nia Newcomer")).click()
    expect(phone.get_by_role("heading", name="Your profile", level=1)).to_be_visible()
    found["phone-profile"] = violations(phone)
    phone.get_by_label("Time zone").select_option("Europe/Berlin")
    phone.get_by_label("Email me a daily digest").check()
    phone.get_by_role("button", name="Save preferences").click()
    expect(phone.get_by_role("status").filter(has_text="Your preferences were saved.")).to_be_visible()
    expect(phone.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    widths = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the profile page is {widths[0]}px wide on a {widths[1]}px phone"
    shot(phone, "accounts-phone-profile")

    admin.goto("/app/profile/")
    admin.get_by_label("Current password").fill("wrong-password")
    admin.get_by_role("textbox", name="New password", exact=True).fill("a-new-password")
    admin.get_by_label("New password again").fill("a-new-password")
    admin.get_by_role("button", name="Change password").click()
    expect(admin.locator(".field-error")).to_contain_text("That is not your current password.")
    found["profile-errors"] = violations(admin)
    shot(admin, "accounts-profile-errors")
    admin.context.clear_cookies()
    admin.goto("/login")
    admin.get_by_role("link", name="Forgot your password?").click()
    found["forgot"] = violations(admin)
    admin.get_by_label("Email").fill("nia@example.org")
    admin.get_by_role("button", name="Send the link").click()
    expect(admin.locator("[data-sent]")).to_be_visible()
    shot(admin, "accounts-forgot-sent")

    found = {name: lines for name, lines in found.items() if lines}
    assert not found, "axe-core found critical or serious violations:\n" + "\n".join(f"{n}: {lines}" for n, lines in found.items())
    assert errors == []
    admin.context.close()
    phone.context.close()
