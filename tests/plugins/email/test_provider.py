"""The Mailgun-compatible HTTP provider against a loopback server that checks each
request's shape, and the provider's signed webhooks (delivery events, inbound mail)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crm_plugins.channels.models import Conversation, Message
from crm_plugins.email.contrib import EmailProvider
from crm_plugins.email.mailgun import signature_for
from crm_plugins.email.models import Undeliverable
from crmcore.sdk import hookimpl
from tests.plugins.channels.conftest import app, drain, email_settings, in_tenant, make_lead  # noqa: F401  (app: register_plugin's)

API_KEY = "key-mailgun-test"
DOMAIN = "mg.acme.test"
SIGNING_KEY = "mailgun-signing-key"


class FakeMailgun:
    """``POST /v3/<domain>/messages.mime`` on 127.0.0.1: basic auth ``api:<key>``, a
    multipart form with ``to`` fields and the ``message`` file; answers 200 with an id,
    or the next scripted (status, json) of ``replies``."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.replies: list[tuple[int, dict[str, Any]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                import base64

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                expected = "Basic " + base64.b64encode(f"api:{API_KEY}".encode()).decode()
                if self.path != f"/v3/{DOMAIN}/messages.mime":
                    status, answer = 404, {"message": "Not found"}
                elif self.headers.get("Authorization") != expected:
                    status, answer = 401, {"message": "Invalid private key"}
                elif server.replies:
                    status, answer = server.replies.pop(0)
                else:
                    form = BytesParser(policy=default_policy).parsebytes(
                        b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
                    parts = {p.get_param("name", header="content-disposition"): p for p in form.iter_parts()}
                    to = [p.get_content().strip() for p in form.iter_parts() if p.get_param("name", header="content-disposition") == "to"]
                    inner = parts["message"].get_payload()  # message/rfc822: parsed already
                    mime = inner[0] if isinstance(inner, list) else message_from_bytes(parts["message"].get_payload(decode=True), policy=default_policy)
                    server.accepted.append({"to": to, "mime": mime})
                    status, answer = 200, {"id": mime["Message-ID"], "message": "Queued. Thank you."}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[FakeMailgun]:
    server = FakeMailgun()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def env(crm_env: Any, smtp: Any, provider: FakeMailgun, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MAILGUN_TEST_KEY", API_KEY)
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email"], settings={
        "email": email_settings(smtp.port, transport="mailgun", api_url=provider.url, api_key={"$env": "MAILGUN_TEST_KEY"},
                                api_domain=DOMAIN, webhook_signing_key=SIGNING_KEY),
        "channels": {"send_attempts": 3, "retry_seconds": 0.05}})
    crm_env.write_tenant("beta", name="Beta Co", plugins=["channels"])
    crm_env.create_app()
    return crm_env


def signed(key: str = SIGNING_KEY, age: int = 0) -> dict[str, str]:
    timestamp, token = str(int(time.time()) - age), uuid.uuid4().hex
    return {"timestamp": timestamp, "token": token, "signature": signature_for(key, timestamp, token)}


def test_mail_goes_through_the_provider_api_with_our_mime_and_its_errors_are_sorted(env, admin, provider, smtp):
    lead = make_lead(env, email="ada@example.com")
    send = {"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Hello", "body": "Hello Ada", "cc": ["Bob <bob@example.com>"]}
    queued = admin("POST", "/messages", json=send, status=201)
    drain(env)
    assert smtp.accepted == []  # not over SMTP
    [mail] = provider.accepted
    assert mail["to"] == ["ada@example.com", "bob@example.com"]
    assert mail["mime"]["Message-ID"] == queued["message_id"] and mail["mime"]["Subject"] == "Hello"
    assert mail["mime"].get_content().strip() == "Hello Ada"
    assert admin("GET", f"/messages/{queued['id']}")["status"] == "sent"
    provider.replies = [(503, {"message": "Service unavailable"}), (400, {"message": "'to' parameter is not a valid address"})]
    failed = admin("POST", "/messages", json={**send, "subject": "Again"}, status=201)
    drain(env)
    answer = admin("GET", f"/messages/{failed['id']}")  # 503 retried, then 400 for good
    assert answer["status"] == "failed" and answer["attempts"] == 2
    assert answer["failure_reason"] == "400 'to' parameter is not a valid address"


def test_a_wrong_key_or_a_missing_api_key_say_so(env, admin, provider, crm_env, smtp):
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email"], settings={
        "email": email_settings(smtp.port, transport="mailgun", api_url=provider.url, api_key="wrong", api_domain=DOMAIN)})
    env.reload()
    lead = make_lead(env, email="ada@example.com")
    queued = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Hi", "body": "x"}, status=201)
    drain(env)
    assert "the provider refused the api_key" in admin("GET", f"/messages/{queued['id']}")["failure_reason"]
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email"], settings={"email": email_settings(smtp.port, transport="mailgun")})
    env.reload()
    refused = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Hi", "body": "x"}, status=422)
    assert "api_key and api_domain" in refused["errors"]["json"]["channel"][0]
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email"], settings={"email": email_settings(smtp.port, transport="sendmore")})
    env.reload()
    refused = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Hi", "body": "x"}, status=422)
    assert "no email provider 'sendmore'" in refused["errors"]["json"]["channel"][0]


def event(kind: str, message_id: str, recipient: str = "ada@example.com", **extra: Any) -> dict[str, Any]:
    return {"signature": signed(), "event-data": {"event": kind, "recipient": recipient,
                                                  "message": {"headers": {"message-id": message_id.strip("<>")}}, **extra}}


def test_signed_delivery_events_mark_delivered_bounced_and_opted_out_and_a_bad_signature_is_403(env, admin, provider):
    lead = make_lead(env, email="ada@example.com")
    first = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "One", "body": "x"}, status=201)
    second = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Two", "body": "x"}, status=201)
    drain(env)
    client = env.client("acme")
    forged = event("delivered", first["message_id"])
    forged["signature"]["signature"] = "0" * 64
    assert client.post("/email/mailgun/events", json=forged).status_code == 403
    stale = event("delivered", first["message_id"])
    stale["signature"] = signed(age=3600)  # a replayed capture
    assert client.post("/email/mailgun/events", json=stale).status_code == 403
    assert client.post("/email/mailgun/events", data="not json").status_code == 400
    assert admin("GET", f"/messages/{first['id']}")["status"] == "sent"
    assert client.post("/email/mailgun/events", json=event("delivered", first["message_id"])).status_code == 200
    assert admin("GET", f"/messages/{first['id']}")["status"] == "delivered"
    bounce = event("failed", second["message_id"], severity="permanent",
                   **{"delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"}})
    assert client.post("/email/mailgun/events", json=bounce).status_code == 200
    answer = admin("GET", f"/messages/{second['id']}")
    assert answer["status"] == "failed" and answer["failure_reason"] == "bounced: 550 5.1.1 The email account does not exist"
    with in_tenant(env):
        assert Undeliverable.get().address == "ada@example.com"
    assert client.post("/email/mailgun/events", json=event("complained", "<nothing@x>", recipient="eve@example.com")).status_code == 200
    eve = make_lead(env, email="eve@example.com")
    refused = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": eve.id, "subject": "Hi", "body": "x"}, status=422)
    assert "asked for no messages at all" in refused["errors"]["json"]["to"][0]
    assert env.client("beta").post("/email/mailgun/events", json=event("delivered", first["message_id"])).status_code == 404


def test_signed_inbound_mail_threads_onto_the_conversation_raw_or_parsed(env, admin, provider):
    lead = make_lead(env, email="ada@example.com")
    sent = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Offer", "body": "x"}, status=201)
    drain(env)
    client = env.client("acme")
    raw = (f"From: Ada <ada@example.com>\r\nTo: sales@acme.test\r\nSubject: Re: Offer\r\nMessage-ID: <reply-1@example.com>\r\n"
           f"In-Reply-To: {sent['message_id']}\r\n\r\nYes please.\r\n")
    assert client.post("/email/mailgun/inbound", data={"body-mime": raw, **signed("wrong")}).status_code == 403
    answer = client.post("/email/mailgun/inbound", data={"body-mime": raw, **signed()})
    assert answer.status_code == 200 and answer.get_json()["duplicate"] is False
    assert client.post("/email/mailgun/inbound", data={"body-mime": raw, **signed()}).get_json()["duplicate"] is True
    headers = json.dumps([["Message-Id", "<reply-2@example.com>"], ["In-Reply-To", "<reply-1@example.com>"], ["Subject", "Re: Offer"]])
    parsed = {"sender": "ada@example.com", "recipient": "sales@acme.test", "subject": "Re: Offer", "body-plain": "And a question.",
              "body-html": "<p>And a question.<script>alert(1)</script></p>", "message-headers": headers, **signed()}
    assert client.post("/email/mailgun/inbound", data=parsed).status_code == 200
    assert client.post("/email/mailgun/inbound", data={**parsed, "message-headers": "{broken", **signed()}).status_code == 422
    with in_tenant(env):
        rows = list(Message.select().where(Message.direction == "in").order_by(Message.id))
        conversations = {c.id for c in Conversation.select()}
    assert [(m.body_text.strip(), m.conversation_id) for m in rows] == [("Yes please.", sent["conversation_id"]), ("And a question.", sent["conversation_id"])]
    assert "<script" not in rows[1].body_html and conversations == {sent["conversation_id"]}


class Pigeons:
    """A provider plugin: keeps what it is handed; "not ready" until api_domain is set."""

    def __init__(self) -> None:
        self.handed: list[tuple[list[str], bytes]] = []

    def send(self, conf, message, mime, recipients):
        self.handed.append((recipients, mime))
        return "pigeon-1"

    @hookimpl
    def crm_email_providers(self, tenant):
        return [EmailProvider(name="pigeons", label="Carrier pigeons", send=self.send,
                              problem=lambda conf: None if conf["api_domain"] else "pigeons need settings.email api_domain")]


def test_hook_crm_email_providers(env, admin, crm_env, smtp, register_plugin):
    pigeons = register_plugin(Pigeons(), name="pigeons")
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email"], settings={"email": email_settings(smtp.port, transport="pigeons")})
    env.reload()
    lead = make_lead(env, email="ada@example.com")
    send = {"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Coo", "body": "Coo coo"}
    refused = admin("POST", "/messages", json=send, status=422)
    assert refused["errors"]["json"]["channel"] == ["pigeons need settings.email api_domain"]
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email"],
                         settings={"email": email_settings(smtp.port, transport="pigeons", api_domain="coop.test")})
    env.reload()
    queued = admin("POST", "/messages", json=send, status=201)
    drain(env)
    [(recipients, mime)] = pigeons.handed
    assert recipients == ["ada@example.com"] and queued["message_id"].encode() in mime and smtp.accepted == []
    assert admin("GET", f"/messages/{queued['id']}")["status"] == "sent"
