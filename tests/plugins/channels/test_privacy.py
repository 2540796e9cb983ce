"""The channels plugin's part of privacy requests and merges, through the real API."""

from __future__ import annotations

import crm_plugins.channels.contrib as channels
from crm_plugins.channels.models import Conversation, Message
from tests.plugins.channels.conftest import drain, in_tenant, make_lead


def test_export_merge_and_erase_carry_the_conversations(env, admin, smtp):
    ada = make_lead(env, "Ada Lovelace", email="ada@example.com")
    twin = make_lead(env, "Ada L.", email="ada.l@example.com")
    for lead, subject in ((ada, "First"), (twin, "Second")):
        admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": subject, "body": "Hi"}, status=201)
    drain(env)
    merged = admin("POST", f"/leads/{ada.id}/merge", json={"other_id": twin.id})
    assert merged is not None
    with in_tenant(env):
        assert {c.lead_id for c in Conversation.select()} == {ada.id}
    with in_tenant(env):  # the email unsubscribe of one of their addresses is theirs too
        channels.set_consent("Ada@Example.com", opted_out=True, channel="email", source="one-click", scope="marketing")
    exported = admin("GET", f"/leads/{ada.id}/export")
    assert sorted(m["subject"] for m in exported["plugins"]["channels"]["messages"]) == ["First", "Second"]
    consent = exported["plugins"]["channels"]["consent"]
    assert [(c["address"], c["scope"], c["source"]) for c in consent] == [("ada@example.com", "marketing", "one-click")]
    erased = admin("POST", f"/leads/{ada.id}/erase")
    assert erased["erased"]["channels_message"] == 2 and erased["erased"]["channels_conversation"] == 2
    with in_tenant(env):
        assert Message.select().count() == 0 and Conversation.select().count() == 0
