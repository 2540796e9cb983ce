"""Reply-address tokens: Reply-To is the sender's address plus-addressed with the
message's token; a reply that lost In-Reply-To and References threads by it (before the
subject), read from a real IMAP server (dovecot)."""

from __future__ import annotations

import pytest

from crm_plugins.channels.models import Message
from tests.plugins.channels.conftest import drain, email_settings, in_tenant, make_lead
from tests.plugins.email.test_inbound import poll


@pytest.fixture
def env(crm_env, smtp, mailbox):
    crm_env.write_tenant("acme", plugins=["channels", "email"],
                         settings={"email": {**email_settings(smtp.port, reply_tokens=True), **mailbox.settings()}})
    crm_env.create_app()
    return crm_env


def reply(to: str, subject: str, message_id: str, body: str) -> str:
    return (f"From: Ada <ada@example.com>\nTo: {to}\nSubject: {subject}\nMessage-ID: {message_id}\n"
            f"Content-Type: text/plain; charset=utf-8\n\n{body}\n")


def test_a_reply_without_threading_headers_finds_its_thread_by_the_reply_token(env, admin, smtp, mailbox):
    lead = make_lead(env, email="ada@example.com")
    send = {"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Offer", "body": "Hi"}
    first = admin("POST", "/messages", json=send, status=201)
    second = admin("POST", "/messages", json=send, status=201)  # a second thread, same subject: newer
    drain(env)
    assert first["conversation_id"] != second["conversation_id"]
    token = first["message_id"].strip("<>").split("@")[0]
    reply_to = {m["Message-ID"]: m["Reply-To"] for m in smtp.accepted}[first["message_id"]]
    assert reply_to == f"Acme Sales <sales+{token}@acme.test>"
    # a token that is no message of ours: the subject and sender decide (the newest thread)
    mailbox.deliver(reply(f"sales+{'0' * 32}@acme.test", "Re: Offer", "<t2@example.com>", "Forged token"))
    # the subject alone would pick the newest thread; the token says the first
    mailbox.deliver(reply(f"sales+{token}@acme.test", "Re: Offer", "<t1@example.com>", "Answer to the first"))
    # headers first: In-Reply-To naming the second wins over a token naming the first
    mailbox.deliver(reply(f"sales+{token}@acme.test", "Re: Offer", "<t3@example.com>", "Headers win").replace(
        "Content-Type", f"In-Reply-To: {second['message_id']}\nContent-Type"))
    poll(env)
    with in_tenant(env):
        found = {m.body_text.strip(): m.conversation_id for m in Message.select().where(Message.direction == "in")}
    assert found == {"Answer to the first": first["conversation_id"], "Forged token": second["conversation_id"],
                     "Headers win": second["conversation_id"]}
