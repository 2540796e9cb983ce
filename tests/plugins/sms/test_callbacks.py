"""The provider's calls: signed status callbacks (never backwards, errors kept and
shown) and inbound messages (threaded onto the person's conversation, or a new lead;
deduplicated by MessageSid)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from crm_plugins.channels.models import Conversation, Message
from crmcore.sdk import Activity, Lead
from tests.plugins.channels.conftest import drain, in_tenant
from tests.plugins.sms.conftest import Callbacks, make_lead
from tests.plugins.sms.test_send import send


def sent_message(env, admin, lead):
    queued = send(admin, lead)
    drain(env)
    return admin("GET", f"/messages/{queued['id']}")


def test_unsigned_or_wrongly_signed_callbacks_are_refused(env, admin, callbacks):
    params = {"MessageSid": "SMx", "MessageStatus": "delivered", "To": "+447911123456"}
    assert callbacks.post("status", params, sign=None).status_code == 403
    assert callbacks.post("status", params, sign="another-token").status_code == 403
    assert callbacks.post("inbound", {"From": "+447911123456", "Body": "hi", "MessageSid": "SMin"}, sign="wrong").status_code == 403
    with in_tenant(env):
        assert Message.select().count() == 0
    # the signature covers the query string too
    good = callbacks.post("status", params, query="ref=crm-1")
    assert good.status_code == 204


def test_delivery_statuses_never_move_backwards(env, admin, callbacks, captured_signals):
    lead = make_lead(env)
    message = sent_message(env, admin, lead)
    sid = message["message_id"]
    with captured_signals("message_delivered", "message_failed") as signals:
        assert callbacks.status(sid, "sent").status_code == 204
        assert callbacks.status(sid, "delivered").status_code == 204
        callbacks.status(sid, "sent")  # late: ignored
        callbacks.status(sid, "queued")
        callbacks.status(sid, "undelivered", ErrorCode="30003")  # after delivered: ignored
    answer = admin("GET", f"/messages/{message['id']}")
    assert answer["status"] == "delivered"
    assert [name for name, _, _ in signals] == ["message_delivered"]
    with in_tenant(env):
        assert Message.get_by_id(message["id"]).headers["provider_status"] == "delivered"


def test_a_callback_before_the_sid_is_noted_finds_the_message_by_its_ref(env, admin, callbacks, provider):
    lead = make_lead(env)
    queued = send(admin, lead)
    ref = admin("GET", f"/messages/{queued['id']}")["message_id"]
    callbacks.post("status", {"MessageSid": "SMearly", "MessageStatus": "failed", "To": "+447911123456", "ErrorCode": "30006"}, query=f"ref={ref}")
    answer = admin("GET", f"/messages/{queued['id']}")
    assert answer["status"] == "failed" and answer["failure_reason"] == "failed: error 30006 (landline or unreachable carrier)"


def test_an_undelivered_message_shows_the_providers_error_on_the_timeline(env, admin, callbacks, captured_signals):
    lead = make_lead(env)
    message = sent_message(env, admin, lead)
    with captured_signals("message_failed") as failed:
        callbacks.status(message["message_id"], "sent")
        callbacks.status(message["message_id"], "undelivered", ErrorCode="30003", ErrorMessage="Unreachable destination handset")
    answer = admin("GET", f"/messages/{message['id']}")
    assert answer["status"] == "failed" and answer["failure_reason"] == "undelivered: error 30003 (Unreachable destination handset)"
    assert [s[2]["reason"] for s in failed] == [answer["failure_reason"]]
    with in_tenant(env):
        stored = Message.get_by_id(message["id"])
        assert stored.headers["error_code"] == "30003"
        assert Activity.get_by_id(stored.activity_id).outcome == "failed: undelivered: error 30003 (Unreachable destination handset)"
    page = env.client("acme")
    env.login(page)
    html = page.get(f"/app/conversations/{message['conversation_id']}").get_data(as_text=True)
    assert "error 30003" in html


def test_an_inbound_text_continues_the_conversation_of_the_lead_with_that_number(env, admin, callbacks, captured_signals):
    lead = make_lead(env, phone="07911 123456")  # stored nationally written
    with captured_signals("message_received") as received:
        answer = callbacks.inbound("+447911123456", "Yes, call me", "SMin1")
        again = callbacks.inbound("+447911123456", "Yes, call me", "SMin1")  # the provider retried
    assert answer.status_code == 200 and again.status_code == 200 and "<Message>" not in answer.get_data(as_text=True)
    assert [(s[2]["channel"], s[2]["message"].body_text) for s in received] == [("sms", "Yes, call me")]
    with in_tenant(env):
        conversation = Conversation.get()
        assert (conversation.lead_id, conversation.address, conversation.channel) == (lead.id, "+447911123456", "sms")
        assert Message.select().count() == 1
    reply = send(admin, lead, body="Calling now")
    assert reply["conversation_id"] == conversation.id


def test_an_unknown_number_starts_a_conversation_with_a_new_lead_or_is_kept_without_one(env, callbacks):
    callbacks.inbound("+447400123456", "Do you deliver?", "SMnew")
    with in_tenant(env):
        lead = Lead.get(Lead.phone == "+447400123456")
        assert lead.source == "sms"
        assert Conversation.get(Conversation.lead == lead.id).channel == "sms"
    env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "sms"], settings={"sms": {**_settings(env), "unknown_sender": "ignore"}})
    env.reload()
    callbacks.inbound("+447400654321", "Hello?", "SMnew2")
    with in_tenant(env):
        assert not Lead.select().where(Lead.phone == "+447400654321").exists()
        assert Conversation.get(Conversation.address == "+447400654321").lead_id is None


def _settings(env):
    import tomllib

    return tomllib.loads((env.config_dir / "tenants" / "acme.toml").read_text())["settings"]["sms"]


@pytest.mark.parametrize("report, final", [("delivered", "delivered"), ("undelivered", "failed")])
def test_a_delivery_report_that_comes_before_the_worker_notes_the_send_stands(env, admin, provider, captured_signals, report, final):
    """The provider calls back (from its own thread, through the app) while the worker
    still waits for the POST's answer: "sent" must not overwrite the report, nor the
    worker's "queued" the provider's status, and nothing is posted twice."""
    lead = make_lead(env)
    queued = send(admin, lead)
    answered: list[int] = []

    def report_first(form, sid):
        ref = parse_qs(urlsplit(form["StatusCallback"]).query)["ref"][0]
        params = {"MessageSid": sid, "MessageStatus": report, "To": form["To"], "From": form["From"], **({"ErrorCode": "30003"} if final == "failed" else {})}
        answered.append(Callbacks(env).post("status", params, query=f"ref={ref}").status_code)

    provider.before_answer = report_first
    with captured_signals("message_sent", "message_delivered", "message_failed") as signals:
        drain(env)
        drain(env)
    assert answered == [204] and len(provider.sent) == 1
    assert [name for name, _, _ in signals] == [f"message_{final}"]
    answer = admin("GET", f"/messages/{queued['id']}")
    assert answer["status"] == final and answer["message_id"].startswith("SM") and answer["sent_at"]
    with in_tenant(env):
        stored = Message.get_by_id(queued["id"])
        assert stored.headers["provider_status"] == report and stored.held_by is None
        assert Activity.get_by_id(stored.activity_id).outcome.startswith(final)
