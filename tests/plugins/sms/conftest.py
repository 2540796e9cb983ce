"""Fixtures of the SMS plugin's tests: a loopback http.server imitating the provider's
Messages API (basic auth checked, the form kept, a sid answered, or a scripted error),
tenant ``acme`` with channels and sms on, and the provider's signed callbacks."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crm_plugins.sms.provider import signature
from tests.plugins.channels.conftest import Api, token

SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "sms-test-auth-token"
FROM = "+14155550100"
PUBLIC_URL = "https://crm.acme.example"
#: an approved WhatsApp template (the provider's content id)
APPOINTMENT = {"name": "appointment_reminder", "content_sid": "HX0123456789abcdef0123456789abcdef",
               "body": "Hello {{1}}, your appointment is on {{2}}. Reply here to change it.", "variables": ["First name", "Date and time"]}


class FakeProvider:
    """The provider on 127.0.0.1: ``replies`` is a script of (status, json) answers (then
    201 with a new sid); ``sent`` keeps every accepted form; ``requests`` every one."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []
        self.requests: list[dict[str, Any]] = []
        self.replies: list[tuple[int, dict[str, Any]]] = []
        self.lock = threading.Lock()
        #: set to an Event: a POST waits (``holding`` set) until it is set, then is dropped
        #: unanswered and not taken (a send in progress, to kill its worker)
        self.hold: threading.Event | None = None
        self.holding = threading.Event()
        #: called with (form, sid) after a message is taken and before the answer goes
        #: back (the provider's status callback racing the worker's note of the sid)
        self.before_answer: Any = None
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                pairs = urllib.parse.parse_qsl(body, keep_blank_values=True)
                form: dict[str, Any] = dict(pairs)
                if any(key == "MediaUrl" for key, _ in pairs):  # repeated: every link, in order
                    form["MediaUrl"] = [value for key, value in pairs if key == "MediaUrl"]
                if provider.hold is not None:
                    hold, provider.hold = provider.hold, None
                    provider.holding.set()
                    hold.wait(30)
                    self.close_connection = True
                    return
                expected = "Basic " + base64.b64encode(f"{SID}:{AUTH_TOKEN}".encode()).decode()
                with provider.lock:
                    provider.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "form": form})
                    if self.path != f"/2010-04-01/Accounts/{SID}/Messages.json":
                        status, answer = 404, {"code": 20404, "message": "The requested resource was not found"}
                    elif self.headers.get("Authorization") != expected:
                        status, answer = 401, {"code": 20003, "message": "Authenticate"}
                    elif provider.replies:
                        status, answer = provider.replies.pop(0)
                    else:
                        status = 201
                        answer = {"sid": f"SM{len(provider.sent):032x}", "status": "queued", "to": form.get("To"), "body": form.get("Body")}
                    if status == 201:
                        provider.sent.append(form)
                if status == 201 and provider.before_answer is not None:
                    provider.before_answer(form, answer["sid"])
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    server = FakeProvider()
    try:
        yield server
    finally:
        server.close()


def sms_settings(provider: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {"base_url": provider.url, "account_sid": SID, "auth_token": {"$env": "SMS_TEST_AUTH_TOKEN"}, "from_number": FROM,
            "whatsapp_from": "+14155550199", "default_region": "GB", "public_url": PUBLIC_URL, "timeout_seconds": 5,
            "whatsapp_templates": [APPOINTMENT], **extra}


@pytest.fixture
def env(crm_env: Any, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SMS_TEST_AUTH_TOKEN", AUTH_TOKEN)
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "sms"],
                         settings={"sms": sms_settings(provider), "channels": {"send_attempts": 3, "retry_seconds": 0.05}})
    crm_env.write_tenant("beta", name="Beta Co", plugins=["channels"])
    crm_env.create_app()
    return crm_env


@pytest.fixture
def admin(env: Any) -> Api:
    return Api(env, "acme", token(env))


class Callbacks:
    """Posts what the provider posts: form parameters signed with X-Twilio-Signature."""

    def __init__(self, env: Any, slug: str = "acme") -> None:
        self.client = env.client(slug)

    def post(self, path: str, params: dict[str, str], sign: str | None = AUTH_TOKEN, query: str = "") -> Any:
        url = f"{PUBLIC_URL}/sms/twilio/{path}" + (f"?{query}" if query else "")
        headers = {"X-Twilio-Signature": signature(sign, url, params)} if sign else {}
        return self.client.post(f"/sms/twilio/{path}" + (f"?{query}" if query else ""), data=params, headers=headers)

    def inbound(self, sender: str, body: str, sid: str, **extra: str) -> Any:
        return self.post("inbound", {"From": sender, "To": FROM, "Body": body, "MessageSid": sid, "AccountSid": SID, "NumMedia": "0", **extra})

    def status(self, message_sid: str, status: str, to: str = "+447911123456", **extra: str) -> Any:
        return self.post("status", {"MessageSid": message_sid, "MessageStatus": status, "To": to, "From": FROM, "AccountSid": SID, **extra})


@pytest.fixture
def callbacks(env: Any) -> Callbacks:
    return Callbacks(env)


def make_lead(env: Any, name: str = "Ada Lovelace", phone: str | None = "07911 123456", slug: str = "acme") -> Any:
    from crmcore.sdk import Lead, create_record
    from crmcore.testing import in_tenant

    with in_tenant(env, slug):
        return create_record(Lead, {"name": name, "phone": phone})
