"""WhatsApp's 24-hour window; the record page's SMS panel (compose, 422 on the form,
the segment count the server computes)."""

from __future__ import annotations

import datetime as dt
import re

from crm_plugins.channels.models import Message
from crmcore.sdk import utcnow
from tests.plugins.channels.conftest import drain, in_tenant
from tests.plugins.sms.conftest import make_lead

WA = "whatsapp:+447911123456"


def test_whatsapp_free_text_only_within_24_hours_of_the_customers_last_message(env, admin, callbacks, provider):
    lead = make_lead(env)
    body = {"channel": "whatsapp", "entity": "lead", "record_id": lead.id, "body": "Hi there"}
    closed = admin("POST", "/messages", json=body, status=422)
    assert "outside WhatsApp's 24-hour window" in str(closed)
    callbacks.inbound(WA, "Hello from WhatsApp", "SMwa1", ProfileName="Ada")
    queued = admin("POST", "/messages", json=body, status=201)
    drain(env)
    assert provider.sent[-1]["To"] == WA and provider.sent[-1]["From"] == "whatsapp:+14155550199"
    assert admin("GET", f"/messages/{queued['id']}")["status"] == "sent"
    with in_tenant(env):  # 25 hours later
        Message.update(created_at=utcnow() - dt.timedelta(hours=25)).where(Message.direction == "in").execute()
    assert "outside WhatsApp's 24-hour window" in str(admin("POST", "/messages", json=body, status=422))
    assert len(provider.sent) == 1


def page_client(env):
    client = env.client("acme")
    env.login(client)
    return client


def test_the_lead_page_has_the_sms_panel_and_its_form_queues_a_text(env, provider):
    lead = make_lead(env)
    client = page_client(env)
    page = client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert "data-sms-compose" in page and 'value="07911 123456"' in page and "sms.js" in page
    csrf = env.csrf(client)
    sent = client.post(f"/app/sms/compose/lead/{lead.id}", data={"csrf_token": csrf, "to": "07911 123456", "body": "From the page", "idempotency_key": "p1"})
    assert sent.status_code == 302
    drain(env)
    assert provider.sent[0]["Body"] == "From the page" and provider.sent[0]["To"] == "+447911123456"
    refused = client.post(f"/app/sms/compose/lead/{lead.id}", data={"csrf_token": csrf, "to": "123", "body": "x"})
    assert refused.status_code == 422 and "not a valid phone number" in refused.get_data(as_text=True)
    assert client.get("/app/sms/static/sms.js").status_code == 200


def test_the_segment_count_from_the_server(env):
    client = page_client(env)
    headers = {"X-CSRF-Token": env.csrf(client)}
    answer = client.post("/app/sms/segments", json={"text": "ł" * 71}, headers=headers)
    assert answer.get_json() == {"encoding": "UCS-2", "units": 71, "segments": 2, "per_segment": 67, "remaining": 63}
    assert client.post("/app/sms/segments", json={"text": 5}, headers=headers).status_code == 422
    assert re.search(r"segments", client.post("/app/sms/segments", json={"text": "hi"}, headers=headers).get_data(as_text=True))
