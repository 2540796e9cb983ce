"""WhatsApp's approved templates: sent outside the 24-hour window as the provider's
ContentSid + ContentVariables (the text as the customer reads it kept as the body), the
variables checked before queueing; the tenant's registry checked when the config loads."""

from __future__ import annotations

import json

import pytest

from crm_plugins.channels.models import Message
from tests.plugins.channels.conftest import drain, in_tenant
from tests.plugins.sms.conftest import APPOINTMENT, make_lead, sms_settings

WA = "whatsapp:+447911123456"


def template_send(admin, lead, status=201, **options):
    body = {"channel": "whatsapp", "entity": "lead", "record_id": lead.id,
            "channel_options": {"template": "appointment_reminder", "variables": {"1": "Ada", "2": "Friday 10:00"}, **options}}
    return admin("POST", "/messages", json=body, status=status)


def test_an_approved_template_goes_outside_the_window_as_content_sid_and_variables(env, admin, provider):
    lead = make_lead(env)
    queued = template_send(admin, lead)  # the customer never wrote: the window is closed
    assert queued["body_text"] == "Hello Ada, your appointment is on Friday 10:00. Reply here to change it."
    drain(env)
    assert provider.sent == [{
        "To": WA, "From": "whatsapp:+14155550199", "ContentSid": APPOINTMENT["content_sid"],
        "ContentVariables": json.dumps({"1": "Ada", "2": "Friday 10:00"}), "StatusCallback": provider.sent[0]["StatusCallback"],
    }]
    assert "Body" not in provider.sent[0]
    with in_tenant(env):
        stored = Message.get_by_id(queued["id"])
        assert stored.status == "sent" and stored.headers["template"] == "appointment_reminder"
    # free text is still refused outside the window
    free = {"channel": "whatsapp", "entity": "lead", "record_id": lead.id, "body": "Hi"}
    assert "outside WhatsApp's 24-hour window" in str(admin("POST", "/messages", json=free, status=422))


def test_a_template_send_with_bad_variables_or_an_unknown_template_is_refused_before_queueing(env, admin, provider):
    lead = make_lead(env)
    missing = template_send(admin, lead, status=422, variables={"1": "Ada"})
    assert "{{2}} (Date and time) is missing" in str(missing["errors"]["json"]["variables"])
    extra = template_send(admin, lead, status=422, variables={"1": "Ada", "2": "Fri", "3": "x"})
    assert "not variables of 'appointment_reminder': 3" in str(extra)
    newline = template_send(admin, lead, status=422, variables={"1": "Ada\nBob", "2": "Fri"})
    assert "one line" in str(newline)
    unknown = template_send(admin, lead, status=422, template="nope")
    assert "no approved WhatsApp template named 'nope' (this tenant's: appointment_reminder)" in str(unknown)
    as_sms = admin("POST", "/messages", json={"channel": "sms", "entity": "lead", "record_id": lead.id,
                                                "channel_options": {"template": "appointment_reminder"}}, status=422)
    assert "templates are WhatsApp's" in str(as_sms)
    drain(env)
    assert provider.sent == []
    with in_tenant(env):
        assert Message.select().count() == 0


@pytest.mark.parametrize("template, reason", [
    ({**APPOINTMENT, "content_sid": "not-an-id"}, "content id"),
    ({**APPOINTMENT, "body": "Hi {{2}}"}, "without gaps"),
    ({**APPOINTMENT, "variables": ["a", "b", "c"]}, "3 labels for 2 placeholders"),
])
def test_a_bad_template_registry_stops_the_config_with_the_reason(crm_env, provider, template, reason):
    from crmcore.config import ConfigError

    crm_env.write_tenant("acme", plugins=["channels", "sms"], settings={"sms": sms_settings(provider, whatsapp_templates=[template])})
    with pytest.raises(ConfigError) as failure:
        crm_env.create_app()
    assert reason in str(failure.value)


def test_the_panel_form_sends_a_template_and_the_window_route_answers_for_any_number(env, provider, callbacks):
    lead = make_lead(env)
    client = env.client("acme")
    env.login(client)
    page = client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert "WhatsApp window: <span data-wa-window-text>closed: only an approved template can be sent" in page
    assert 'name="wa_var_appointment_reminder_2"' in page
    csrf = env.csrf(client)
    form = {"csrf_token": csrf, "channel": "whatsapp", "to": "07911 123456", "body": "", "wa_template": "appointment_reminder",
            "wa_var_appointment_reminder_1": "Ada", "wa_var_appointment_reminder_2": ""}
    refused = client.post(f"/app/sms/compose/lead/{lead.id}", data=form)
    assert refused.status_code == 422 and "{{2}} (Date and time) is missing" in refused.get_data(as_text=True)
    assert 'value="Ada"' in refused.get_data(as_text=True) and "&lt;form" not in refused.get_data(as_text=True)  # the form again, as typed
    assert client.post(f"/app/sms/compose/lead/{lead.id}", data={**form, "wa_var_appointment_reminder_2": "Friday"}).status_code == 302
    drain(env)
    assert provider.sent[0]["ContentVariables"] == '{"1": "Ada", "2": "Friday"}'
    assert client.get("/app/sms/window?to=07911%20123456").get_json() == {"open": False, "closes_at": None, "text": "closed: only an approved template can be sent"}
    callbacks.inbound(WA, "Thanks", "SMwa-t1")
    state = client.get("/app/sms/window?to=%2B447911123456").get_json()
    assert state["open"] is True and state["text"].startswith("open until ") and state["closes_at"].endswith("Z")
    assert client.get("/app/sms/window?to=12").get_json()["text"] == "unknown until the number is valid"
    assert client.get("/app/sms/window").status_code == 422
