"""End-to-end tests: the real app, served over HTTP, driven by a headless Chromium.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``, or ``CRM_CHROMIUM``),
driven by Playwright for Python through ``executable_path``: Playwright never downloads a
browser here. Without chromium or without the ``playwright`` package the e2e tests are
skipped with the reason, except under ``CI=true``, where a missing browser is a failure
(``.ci/run`` installs it).

Fixtures:

* ``browser`` (package) -- one Chromium for all of tests/e2e.
* ``live_server`` -- a fresh CRM (``CrmEnv``: SQLite, or PostgreSQL with
  ``CRM_TEST_DATABASE_URL``) with tenant ``acme`` on host ``127.0.0.1``, an admin user,
  served by werkzeug in a thread on a free port; ``live_server.api(...)`` calls the REST
  API with an admin token (to seed records quickly).
* ``context`` / ``page`` -- a desktop-sized (1280x800) browser context and page on that
  server; ``phone`` -- a page at 390x800 with touch. A page fails the test on a JavaScript
  error or a 5xx response, and a failing test leaves
  ``artifacts/screenshots/FAILED-<test>.png`` behind.

Helpers: ``sign_in(page, server)`` through the real form, ``shot(page, name)`` saves
``artifacts/screenshots/<name>.png``.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from crmcore import auth, db
from crmcore.testing import CrmEnv, chromium_browser

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the ``browser`` fixture
    expect = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
TIMEOUT_MS = 10_000  # actions and navigation; a broken page fails in seconds, not minutes
EXPECT_TIMEOUT_MS = 5_000
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 800}
ADMIN_PASSWORD = "e2e-secret-pw"




# Package scope, not session: Playwright's sync API allows one running instance per
# thread, so this one is stopped before other folders' browser tests start their own.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    for stale in SCREENSHOTS.glob("FAILED-*.png"):  # from an earlier run
        stale.unlink()
    with chromium_browser(expect_timeout_ms=EXPECT_TIMEOUT_MS) as chromium:
        yield chromium


# --------------------------------------------------------------------------- the server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: Any = "-", size: Any = "-") -> None:  # errors are still logged
        pass


@dataclass
class LiveServer:
    url: str
    env: CrmEnv
    admin_email: str
    admin_password: str
    admin_id: int
    _token: str | None = field(default=None, repr=False)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v1<path>`` as an admin token; returns the decoded JSON (asserts 2xx)."""
        if self._token is None:
            self._token = self.env.token("acme", "admin")
        response = requests.request(method, f"{self.url}/api/v1{path}", headers={"Authorization": f"Bearer {self._token}"}, timeout=10, **kwargs)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.content else None

    def seed(self) -> dict[str, int]:
        """One of each record, linked together, plus a converted lead, so that every list
        and detail page has something to show. Returns the ids."""
        company = self.api("POST", "/companies", json={"name": "Globex Corporation"})
        contact = self.api("POST", "/contacts", json={"first_name": "Hank", "last_name": "Scorpio", "email": "hank@globex.example", "company_id": company["id"]})
        deal = self.api("POST", "/deals", json={"title": "Globex doomsday device", "value": "125000.00", "contact_id": contact["id"], "company_id": company["id"]})
        lead = self.api("POST", "/leads", json={"name": "Grace Hopper", "email": "grace@navy.example", "company_name": "US Navy", "source": "referral", "tags": ["vip"]})
        self.api("POST", "/notes", json={"body": "Met at the conference.", "lead_id": lead["id"]})
        task = self.api("POST", "/tasks", json={"title": "Send the proposal", "deal_id": deal["id"], "assignee_id": self.admin_id})
        other = self.api("POST", "/leads", json={"name": "Alan Turing", "email": "alan@bletchley.example", "company_name": "Bletchley Park"})
        self.api("POST", f"/leads/{other['id']}/convert", json={"create_deal": True})
        return {"company": company["id"], "contact": contact["id"], "deal": deal["id"], "lead": lead["id"], "task": task["id"]}

    def create_user(self, role: str, password: str = ADMIN_PASSWORD, name: str = "") -> str:
        """Another user of tenant acme; returns the email (the password is the admin's)."""
        email = f"{role}-{uuid.uuid4().hex[:6]}@acme.test"
        with db.database.connection_context():
            auth.create_user(self.env.tenant("acme"), email, password, role=role, name=name)
        return email


@pytest.fixture
def live_server(crm_env: CrmEnv) -> Iterator[LiveServer]:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1", "localhost"])
    app = crm_env.create_app()
    email = "admin@acme.test"
    with db.database.connection_context():
        admin = auth.create_user(crm_env.tenant("acme"), email, ADMIN_PASSWORD, role="admin", name="Ada Admin")
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="e2e-live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", crm_env, email, ADMIN_PASSWORD, admin.id)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


# --------------------------------------------------------------------------- the browser side


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _new_context(browser: Any, server: LiveServer, **options: Any) -> Any:
    ctx = browser.new_context(base_url=server.url, locale="en-GB", timezone_id="Europe/London", **options)
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    return ctx


def _watched(pg: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Yield ``pg``; afterwards fail on JavaScript errors and 5xx answers it saw, or, when
    the test failed, leave a screenshot of where it stopped."""
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"JavaScript error on {pg.url}: {exc}"))
    # Chromium reports what the page's Content-Security-Policy blocked as a console error.
    pg.on("console", lambda m: problems.append(f"CSP violation on {pg.url}: {m.text}") if "Content Security Policy" in m.text else None)
    pg.on("response", lambda r: problems.append(f"{r.status} from {r.request.method} {r.url}") if r.status >= 500 else None)
    yield pg
    call = getattr(request.node, "rep_call", None)
    if call is not None and call.failed:
        if not pg.is_closed():
            shot(pg, "FAILED-" + re.sub(r"[^\w.-]+", "_", request.node.name))
        return  # the failure is reported already (a 5xx's traceback is in the captured log)
    assert not problems, "the browser saw errors:\n" + "\n".join(problems)


@pytest.fixture
def context(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A desktop-sized browser context on the live server (closed before the server stops)."""
    ctx = _new_context(browser, live_server, viewport=DESKTOP)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from _watched(context.new_page(), request)


@pytest.fixture
def phone(browser: Any, live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page in a phone-sized (390x800) touch context."""
    ctx = _new_context(browser, live_server, viewport=MOBILE, is_mobile=True, has_touch=True)
    try:
        yield from _watched(ctx.new_page(), request)
    finally:
        ctx.close()


def shot(page: Any, name: str, full_page: bool = True) -> Path:
    """Save a screenshot of ``page`` as artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


def sign_in(page: Any, server: LiveServer, email: str | None = None, password: str | None = None) -> None:
    """Sign in through the real form and wait for the dashboard."""
    page.goto("/login")
    page.get_by_label("Email").fill(email or server.admin_email)
    page.get_by_label("Password").fill(password or server.admin_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


def flash(page: Any, text: Any) -> Any:
    """The flashed message (role=status) with ``text`` (a string or a compiled regex)."""
    return page.get_by_role("status").filter(has_text=text)


def no_horizontal_overflow(page: Any) -> None:
    """The page itself does not scroll sideways (wide tables may scroll inside their box)."""
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url}: the page is {widths[0]}px wide in a {widths[1]}px window"
