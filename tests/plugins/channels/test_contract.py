"""The channel contract: a plugin registers a channel through ``crm_channels`` and gets
conversations, the outbox, the inbox, the timeline and the signals for free."""

from __future__ import annotations

import crm_plugins.channels.contrib as channels
from crm_plugins.channels.contrib import Channel, PermanentFailure
from crm_plugins.channels.models import Conversation
from crmcore.sdk import Activity, Lead, create_record, hookimpl
from tests.plugins.channels.conftest import drain, in_tenant


class Texts:
    """A test channel that "sends" by keeping the message; "fail" in a body is refused."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []

    def send(self, tenant, message, conversation):
        if "fail" in message.body_text:
            raise PermanentFailure("carrier says: unknown number")
        self.sent.append((message.body_text, message.recipients))

    @hookimpl
    def crm_channels(self, tenant):
        return [Channel(name="texts", label="Texts", send=self.send, capabilities=frozenset({"send", "receive"}),
                        max_length=20, identity="phone", activity_kind="sms")]


def test_hook_crm_channels(env, admin, register_plugin, captured_signals):
    texts = register_plugin(Texts(), name="texts")
    with in_tenant(env):
        lead = create_record(Lead, {"name": "Ada", "phone": "+14155550100"})
    with captured_signals("message_sent", "message_failed", "message_received") as seen:
        ok = admin("POST", "/messages", json={"channel": "texts", "entity": "lead", "record_id": lead.id, "body": "See you at 3"}, status=201)
        bad = admin("POST", "/messages", json={"channel": "texts", "entity": "lead", "record_id": lead.id, "body": "fail"}, status=201)
        long = admin("POST", "/messages", json={"channel": "texts", "entity": "lead", "record_id": lead.id, "body": "x" * 21}, status=422)
        assert "20 characters" in long["errors"]["json"]["body"][0]
        drain(env)
        with in_tenant(env) as tenant:
            inbound = channels.receive(tenant, "texts", address="+14155550100", body_text="Thanks!", message_id="sms-1")
            assert channels.receive(tenant, "texts", address="+14155550100", body_text="Thanks!", message_id="sms-1") is None
    assert texts.sent == [("See you at 3", ["+14155550100"])]  # the record's phone, the channel's identity
    assert admin("GET", f"/messages/{bad['id']}")["failure_reason"] == "carrier says: unknown number"
    assert [(name, data["channel"]) for name, _, data in seen] == [("message_sent", "texts"), ("message_failed", "texts"), ("message_received", "texts")]
    with in_tenant(env):
        # a channel without subjects threads by the address: the same conversation, the lead's
        assert inbound.conversation_id == ok["conversation_id"]
        assert Conversation.get_by_id(inbound.conversation_id).lead_id == lead.id
        kinds = [(a.kind, a.channel, a.direction, a.outcome) for a in Activity.select().where(Activity.lead == lead.id).order_by(Activity.id)]
    assert kinds == [("sms", "texts", "out", "sent"), ("sms", "texts", "out", "failed: carrier says: unknown number"), ("sms", "texts", "in", "received")]
    client = env.client("acme")
    env.login(client, "acme")
    page = client.get("/app/conversations/?channel=texts").get_data(as_text=True)
    assert '<option value="texts" selected>Texts</option>' in page and page.count("data-conversation=") >= 1
