"""SMS out: from the API through the outbox to the loopback provider (basic auth, the
form), E.164 numbers, idempotency, the provider's errors."""

from __future__ import annotations

from crm_plugins.channels.models import Message
from crmcore.sdk import Activity
from tests.plugins.channels.conftest import drain, in_tenant
from tests.plugins.sms.conftest import AUTH_TOKEN, FROM, PUBLIC_URL, SID, make_lead


def send(admin, lead, status=201, **extra):
    body = {"channel": "sms", "entity": "lead", "record_id": lead.id, "body": "Hello Ada", **extra}
    return admin("POST", "/messages", json=body, status=status)


def test_a_text_from_a_lead_goes_once_to_the_provider_in_e164_and_lands_on_the_timeline(env, admin, provider, captured_signals):
    lead = make_lead(env, phone="07911 123456")
    with captured_signals("message_sent") as sent:
        queued = send(admin, lead, idempotency_key="k-1")
        again = send(admin, lead, idempotency_key="k-1")
        assert queued["status"] == "queued" and again["id"] == queued["id"]
        drain(env)
        drain(env)  # nothing left: no second POST
    assert len(provider.sent) == 1
    request = provider.requests[0]
    assert request["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    import base64

    assert request["auth"] == "Basic " + base64.b64encode(f"{SID}:{AUTH_TOKEN}".encode()).decode()
    form = request["form"]
    assert form["To"] == "+447911123456" and form["From"] == FROM and form["Body"] == "Hello Ada"
    assert form["StatusCallback"].startswith(f"{PUBLIC_URL}/sms/twilio/status?ref=crm-")
    answer = admin("GET", f"/messages/{queued['id']}")
    assert answer["status"] == "sent" and answer["message_id"] == "SM" + "0" * 32
    assert [(s[2]["channel"], s[2]["message"].id) for s in sent] == [("sms", queued["id"])]
    with in_tenant(env):
        activity = Activity.get(Activity.lead == lead.id)
    assert (activity.kind, activity.channel, activity.direction, activity.outcome) == ("sms", "sms", "out", "sent")
    # the next text to the same number continues the same conversation
    second = send(admin, lead, body="Still there?")
    assert second["conversation_id"] == queued["conversation_id"]


def test_an_invalid_or_missing_number_is_refused_with_a_clear_422(env, admin, provider):
    lead = make_lead(env, phone="12345")
    answer = send(admin, lead, status=422)
    assert "not a valid phone number" in str(answer)
    no_phone = make_lead(env, name="Bob", phone=None)
    assert "no recipient" in str(send(admin, no_phone, status=422))
    assert "not a phone number" in str(send(admin, no_phone, status=422, to=["hello"]))
    assert provider.requests == []


def test_a_5xx_is_retried_and_a_4xx_fails_with_the_providers_code_and_message(env, admin, provider, captured_signals):
    lead = make_lead(env)
    provider.replies = [(503, {"code": 20500, "message": "Service unavailable"})]
    retried = send(admin, lead)
    drain(env)
    assert admin("GET", f"/messages/{retried['id']}")["status"] == "sent"
    assert len(provider.requests) == 2 and len(provider.sent) == 1

    provider.replies = [(400, {"code": 21211, "message": "The 'To' number is not a valid phone number."})]
    with captured_signals("message_failed") as failed:
        doomed = send(admin, lead, body="Again")
        drain(env)
    answer = admin("GET", f"/messages/{doomed['id']}")
    assert answer["status"] == "failed" and answer["failure_reason"] == "HTTP 400: error 21211: The 'To' number is not a valid phone number."
    assert [s[2]["reason"] for s in failed] == [answer["failure_reason"]]
    assert len(provider.sent) == 1


def test_a_message_whose_sid_is_known_is_not_posted_again(env, admin, provider):
    """A worker that died after the provider took the message but before "sent" was
    stored: the retry sees the noted sid and does not send it twice."""
    lead = make_lead(env)
    queued = send(admin, lead)
    with in_tenant(env):
        Message.update(message_id="SMalreadysent").where(Message.id == queued["id"]).execute()
    drain(env)
    assert provider.requests == [] and admin("GET", f"/messages/{queued['id']}")["status"] == "sent"


def test_a_tenant_without_the_plugin_has_no_sms_channel_and_no_routes(env, provider):
    from tests.plugins.channels.conftest import Api, token

    beta = Api(env, "beta", token(env, "beta"))
    lead = make_lead(env, slug="beta")
    assert "no channel 'sms'" in str(send(beta, lead, status=422))
    client = env.client("beta")
    assert client.post("/sms/twilio/inbound", data={"From": "+447911123456"}).status_code == 404
    assert client.post("/sms/twilio/status", data={}).status_code == 404
