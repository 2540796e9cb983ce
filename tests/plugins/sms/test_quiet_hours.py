"""Quiet hours hold texts too: the channels outbox waits them out for every channel."""

from __future__ import annotations

import pytest

from tests.plugins.channels.test_quiet_hours import run_due_tasks, window_around_now
from tests.plugins.sms.conftest import AUTH_TOKEN, make_lead, sms_settings


@pytest.fixture
def env(crm_env, provider, monkeypatch):
    monkeypatch.setenv("SMS_TEST_AUTH_TOKEN", AUTH_TOKEN)
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "sms"], settings={
        "sms": sms_settings(provider), "channels": {"quiet_hours": window_around_now(), "time_zone": "UTC"}})
    crm_env.create_app()
    return crm_env


def test_a_text_in_quiet_hours_waits_and_an_urgent_one_goes(env, admin, provider):
    lead = make_lead(env, phone="07911 123456")
    send = {"channel": "sms", "entity": "lead", "record_id": lead.id, "body": "Our offer"}
    waiting = admin("POST", "/messages", json=send, status=201)
    admin("POST", "/messages", json={**send, "body": "Your code is 1234", "urgent": True}, status=201)
    run_due_tasks(env)
    assert [form["Body"] for form in provider.sent] == ["Your code is 1234"]
    held = admin("GET", f"/messages/{waiting['id']}")
    assert held["status"] == "queued" and held["waiting_until"] and held["attempts"] == 0
