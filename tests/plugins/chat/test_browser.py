"""Chromium end to end: a third-party page on another port embeds the widget; the visitor
chats and leaves an email; the agent sees the conversation and the new lead live in the
inbox and replies; the visitor sees the reply; a visitor's HTML never runs in the agent's
page. Screenshots go to artifacts/chat/."""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from crmcore import auth
from crmcore.entities.models import Lead
from crmcore.testing import chromium_browser

from .conftest import chat_settings, in_tenant

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "artifacts" / "chat"
TINY_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")




@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser(expect_timeout_ms=8000) as chromium:
        yield chromium


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


def _serve(app: Any) -> Any:
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _site(html: str) -> Any:
    """The 'customer website': another origin (another port) serving one page."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def _guard(page: Any, errors: list[str]) -> None:
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)  # CSP violations
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)


def test_visitor_becomes_a_lead_and_chats_with_an_agent_live(browser: Any, crm_env: Any) -> None:
    site_port_holder: dict[str, int] = {}
    # The site's origin must be allowed: bind it first, then write the tenant.
    site = _site("<!doctype html><title>Shop</title><body><h1>Acme Shop</h1><p>Best widgets in town.</p>__SNIPPET__</body>")
    site_port_holder["port"] = site.server_address[1]
    origin = f"http://127.0.0.1:{site.server_address[1]}"
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["localhost"], plugins=["chat"],
                         settings=chat_settings(allowed_origins=[origin], prechat_fields=["name"], assistant_enabled=False, colour="#0f766e", title="Talk to Acme"))
    app = crm_env.create_app()
    crm = _serve(app)
    crm_url = f"http://localhost:{crm.server_port}"
    from crm_plugins.chat import service

    with app.test_request_context(), in_tenant(crm_env) as tenant:
        key = service.public_key(tenant)
        password = "e2e-" + uuid.uuid4().hex
        admin = auth.create_user(tenant, "agent@acme.test", password, role="admin", name="Alex Agent")
    snippet = f'<script src="{crm_url}/chat/widget.js" data-key="{key}" async></script>'
    site.RequestHandlerClass.do_GET.__globals__  # noqa: B018 - keep the handler module alive
    html = "<!doctype html><meta name=viewport content='width=device-width, initial-scale=1'><title>Shop</title><body style='font-family:serif'><h1>Acme Shop</h1><p>Best widgets in town.</p>" + snippet + "</body>"
    site.shutdown()
    site.server_close()
    site = _site(html)
    origin = f"http://127.0.0.1:{site.server_address[1]}"
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["localhost"], plugins=["chat"],
                         settings=chat_settings(allowed_origins=[origin], prechat_fields=["name"], assistant_enabled=False, colour="#0f766e", title="Talk to Acme",
                                               canned_responses=["Yes, we do! Delivery takes two days."]))
    crm_env.reload()
    errors: list[str] = []
    try:
        visitor_ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        agent_ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        agent = agent_ctx.new_page()
        _guard(agent, errors)
        agent.goto(f"{crm_url}/login")
        agent.fill("input[name=email]", admin.email)
        agent.fill("input[name=password]", password)
        agent.click("button[type=submit]")
        agent.goto(f"{crm_url}/app/chat/?view=all")
        expect(agent.locator("[data-chat-status]")).to_have_text("Live")
        _shot(agent, "inbox-empty")

        visitor = visitor_ctx.new_page()
        _guard(visitor, errors)
        visitor.goto(f"{origin}/")
        launcher = visitor.locator("[data-crm-chat] .launcher")
        expect(launcher).to_contain_text("Talk to Acme")
        launcher.click()
        visitor.fill("#crm-chat-name", "Vera Visitor")
        visitor.locator("[data-crm-chat] .prechat button").click()
        visitor.fill("#crm-chat-input", "Hi! Do you deliver to Berlin?")
        visitor.keyboard.press("Enter")
        expect(visitor.locator("[data-crm-chat] .msg.from-visitor").last).not_to_have_class(re.compile("pending"))

        # The agent sees it live: the conversation appears in the list (unread), then opens it.
        row = agent.locator(".chat-conversations a", has_text="Vera Visitor")
        expect(row.locator("[data-unread]")).to_have_text("1")
        _shot(agent, "inbox-new-conversation")
        row.click()
        expect(agent.locator(".chat-messages")).to_contain_text("Do you deliver to Berlin?")

        # a photo from the visitor: shown in the widget, a download link for the agent
        visitor.set_input_files("#crm-chat-file", files=[{"name": "parcel.png", "mimeType": "image/png", "buffer": TINY_PNG}])
        expect(visitor.locator("[data-crm-chat] .msg.from-visitor img.thumb")).to_have_attribute("alt", "parcel.png")
        expect(agent.locator(".chat-messages .msg-file")).to_contain_text("parcel.png")
        assert agent.request.get(crm_url + agent.locator(".chat-messages .msg-file").get_attribute("href")).body() == TINY_PNG

        visitor.fill("#crm-chat-input", "My email is vera@example.org <img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>")
        visitor.keyboard.press("Enter")
        expect(agent.locator(".chat-messages .msg.from-visitor").last).to_contain_text("vera@example.org <img src=x")
        expect(agent.locator("[data-chat-lead] a")).to_be_visible()  # the new lead, live
        assert agent.evaluate("window.__pwned") is None
        assert agent.locator(".chat-messages img").count() == 0
        assert visitor.evaluate("window.__pwned") is None
        _shot(visitor, "widget-visitor")

        agent.select_option("#chat-canned", index=1)  # a canned response, then Enter
        expect(agent.locator("#chat-reply-text")).to_have_value("Yes, we do! Delivery takes two days.")
        agent.keyboard.press("Enter")
        expect(visitor.locator("[data-crm-chat] .msg.from-agent")).to_contain_text("Yes, we do!")
        expect(visitor.locator("[data-crm-chat] .msg.from-agent .who")).to_have_text("Alex Agent")
        expect(visitor.locator("[data-crm-chat] .msg.from-visitor .meta").first).to_have_text("Seen")  # read receipt
        agent.locator("#chat-reply-text").press_sequentially("Anything else")
        expect(visitor.locator("[data-crm-chat] .typing")).to_have_text("An agent is typing…")
        _shot(agent, "inbox-conversation")
        _shot(visitor, "widget-reply")

        # A reload of the customer's page shows the conversation again (token in localStorage).
        visitor.reload()
        visitor.locator("[data-crm-chat] .launcher").click()
        expect(visitor.locator("[data-crm-chat] .msg")).to_have_count(5)  # greeting, 3 visitor (one a file), 1 agent

        # Phone-sized widget
        phone_ctx = browser.new_context(viewport={"width": 390, "height": 760}, has_touch=True, is_mobile=True)
        phone = phone_ctx.new_page()
        _guard(phone, errors)
        phone.goto(f"{origin}/")
        phone.locator("[data-crm-chat] .launcher").click()
        expect(phone.locator("#crm-chat-name")).to_be_visible()
        box = phone.locator("[data-crm-chat] .panel").bounding_box()
        assert box["width"] >= 380
        _shot(phone, "widget-phone")
        agent.set_viewport_size({"width": 390, "height": 800})
        _shot(agent, "inbox-phone")
        assert errors == []
    finally:
        crm.shutdown()
        crm.server_close()
        site.shutdown()
        site.server_close()
    with in_tenant(crm_env):
        lead = Lead.get(Lead.email == "vera@example.org")
        assert lead.source == "chat" and lead.name == "Vera Visitor"


def test_faq_setup_page(browser: Any, crm_env: Any) -> None:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["localhost"], plugins=["chat"], settings=chat_settings())
    app = crm_env.create_app()
    crm = _serve(app)
    url = f"http://localhost:{crm.server_port}"
    from crm_plugins.chat import service

    with app.test_request_context(), in_tenant(crm_env) as tenant:
        password = "e2e-" + uuid.uuid4().hex
        admin = auth.create_user(tenant, "boss@acme.test", password, role="admin")
        key = service.public_key(tenant)
    errors: list[str] = []
    try:
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        _guard(page, errors)
        page.goto(f"{url}/login")
        page.fill("input[name=email]", admin.email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.goto(f"{url}/app/chat/")
        page.get_by_role("link", name="Widget & FAQ").click()
        expect(page.locator("#snippet")).to_have_value(f'<script src="{url}/chat/widget.js" data-key="{key}" async></script>')
        page.get_by_role("button", name="Add entry").click()
        expect(page.locator(".field-error").first).to_contain_text("Write the question")
        page.fill("#f-question", "What are your opening hours?")
        page.fill("#f-answer", "Nine to five.")
        page.get_by_role("button", name="Add entry").click()
        expect(page.locator("table")).to_contain_text("Nine to five.")
        _shot(page, "faq-setup")
        page.get_by_role("button", name="Delete “What are your opening hours?”").click()
        expect(page.locator("table")).to_have_count(0)
        assert errors == []
    finally:
        crm.shutdown()
        crm.server_close()


def test_widget_falls_back_to_http_when_websockets_are_blocked(browser: Any, crm_env: Any) -> None:
    import requests

    site = _site("placeholder")
    origin = f"http://127.0.0.1:{site.server_address[1]}"
    site.shutdown()
    site.server_close()
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["localhost"], plugins=["chat"], settings=chat_settings(assistant_enabled=False))
    app = crm_env.create_app()
    crm = _serve(app)
    crm_url = f"http://localhost:{crm.server_port}"
    from crm_plugins.chat import service

    with app.test_request_context(), in_tenant(crm_env) as tenant:
        key = service.public_key(tenant)
    site = _site(f"<!doctype html><meta name=viewport content='width=device-width'><title>Blog</title><h1>Blog</h1><script src=\"{crm_url}/chat/widget.js\" data-key=\"{key}\" async></script>")
    origin = f"http://127.0.0.1:{site.server_address[1]}"
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["localhost"], plugins=["chat"], settings=chat_settings(allowed_origins=[origin], assistant_enabled=False))
    crm_env.reload()
    errors: list[str] = []
    try:
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        _guard(page, errors)
        page.route_web_socket(re.compile(r"/chat/ws"), lambda ws: ws.close())  # a proxy that drops WebSockets
        page.goto(f"{origin}/")
        page.locator("[data-crm-chat] .launcher").click()
        page.fill("#crm-chat-input", "Is anyone there?")
        page.keyboard.press("Enter")
        expect(page.locator("[data-crm-chat] .msg.from-visitor")).not_to_have_class(re.compile("pending"), timeout=15000)  # sent by POST
        agent = {"Authorization": f"Bearer {crm_env.token('acme', 'agent')}"}
        cid = requests.get(f"{crm_url}/api/v1/chat/conversations", headers=agent, timeout=5).json()[0]["id"]
        requests.post(f"{crm_url}/api/v1/chat/conversations/{cid}/messages", json={"content": "Yes, over HTTP!"}, headers=agent, timeout=5)
        expect(page.locator("[data-crm-chat] .msg.from-agent")).to_contain_text("Yes, over HTTP!")  # by long polling
        assert errors == []
    finally:
        crm.shutdown()
        crm.server_close()
        site.shutdown()
        site.server_close()


def test_widget_reconnects_after_a_drop_and_misses_nothing(browser: Any, crm_env: Any) -> None:
    import requests

    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["localhost"], plugins=["chat"], settings=chat_settings(assistant_enabled=False))
    app = crm_env.create_app()
    crm = _serve(app)
    crm_url = f"http://localhost:{crm.server_port}"
    from crm_plugins.chat import service

    with app.test_request_context(), in_tenant(crm_env) as tenant:
        key = service.public_key(tenant)
    site = _site(f"<!doctype html><title>Docs</title><h1>Docs</h1><script src=\"{crm_url}/chat/widget.js\" data-key=\"{key}\" async></script>")
    origin = f"http://127.0.0.1:{site.server_address[1]}"
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["localhost"], plugins=["chat"], settings=chat_settings(allowed_origins=[origin], assistant_enabled=False))
    crm_env.reload()
    sockets: list[Any] = []
    errors: list[str] = []

    def through(ws: Any) -> None:  # a proxy in between, so the test can cut the line
        ws.connect_to_server()
        sockets.append(ws)

    try:
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        _guard(page, errors)
        page.route_web_socket(re.compile(r"/chat/ws"), through)
        page.goto(f"{origin}/")
        page.locator("[data-crm-chat] .launcher").click()
        page.fill("#crm-chat-input", "First question")
        page.keyboard.press("Enter")
        expect(page.locator("[data-crm-chat] .msg.from-visitor")).not_to_have_class(re.compile("pending"))
        agent = {"Authorization": f"Bearer {crm_env.token('acme', 'agent')}"}
        cid = requests.get(f"{crm_url}/api/v1/chat/conversations", headers=agent, timeout=5).json()[0]["id"]

        sockets[-1].close(code=1012)  # the connection drops ...
        for n in range(3):  # ... and the agent writes meanwhile
            requests.post(f"{crm_url}/api/v1/chat/conversations/{cid}/messages", json={"content": f"answer {n}"}, headers=agent, timeout=5)
        expect(page.locator("[data-crm-chat] .msg.from-agent")).to_have_count(3)  # after reconnecting by itself
        expect(page.locator("[data-crm-chat] .msg.from-agent .text")).to_have_text(["answer 0", "answer 1", "answer 2"])
        assert len(sockets) >= 2
        page.fill("#crm-chat-input", "Thanks")
        page.keyboard.press("Enter")
        expect(page.locator("[data-crm-chat] .msg.from-visitor")).to_have_count(2)
        expect(page.locator("[data-crm-chat] .msg.from-visitor").last).not_to_have_class(re.compile("pending"))
        assert errors == []
    finally:
        crm.shutdown()
        crm.server_close()
        site.shutdown()
        site.server_close()
    with in_tenant(crm_env):
        from crm_plugins.chat.models import ChatMessage

        assert [m.content for m in ChatMessage.select().where(ChatMessage.sender == "visitor").order_by(ChatMessage.id)] == ["First question", "Thanks"]


def test_captured_lead_appears_on_the_kanban_lead_board_live(browser: Any, crm_env: Any) -> None:
    """With the kanban plugin on, a chat that leaves an email puts the lead on the lead board
    while an agent is looking at it (the lead is created through the core's write path)."""
    import requests

    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["localhost"], plugins=["chat", "kanban"], settings=chat_settings(assistant_enabled=False))
    app = crm_env.create_app()
    crm = _serve(app)
    url = f"http://localhost:{crm.server_port}"
    from crm_plugins.chat import service

    with app.test_request_context(), in_tenant(crm_env) as tenant:
        key = service.public_key(tenant)
        password = "e2e-" + uuid.uuid4().hex
        admin = auth.create_user(tenant, "lead-board@acme.test", password, role="admin")
    errors: list[str] = []
    try:
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        _guard(page, errors)
        page.goto(f"{url}/login")
        page.fill("input[name=email]", admin.email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.goto(f"{url}/app/kanban/?board=leads")
        expect(page.locator("[data-kb-live]")).to_have_text("Live")
        session = requests.post(f"{url}/api/v1/chat/public/session", json={"name": "Kim Kanban"}, headers={"X-Chat-Key": key}, timeout=5).json()
        sent = requests.post(f"{url}/api/v1/chat/public/messages", json={"content": "Write to kim@kanban.example please"}, headers={"X-Chat-Key": key, "X-Chat-Token": session["token"]}, timeout=5)
        assert sent.status_code == 201
        expect(page.locator(".kb-card", has_text="Kim Kanban")).to_be_visible()
        _shot(page, "kanban-lead-board")
        assert errors == []
    finally:
        crm.shutdown()
        crm.server_close()
