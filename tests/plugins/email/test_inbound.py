"""Email in from a real IMAP server (dovecot on loopback): threading, linking, nothing
missed after an outage, nothing imported twice, failures shown to admins."""

from __future__ import annotations

import pytest

from crm_plugins.channels.models import Conversation, Message
from crm_plugins.email.models import MailboxFolder
from crmcore.jobs import Scheduler
from crmcore.sdk import Activity, Contact, Lead, create_record
from tests.plugins.channels.conftest import drain, email_settings, in_tenant, make_lead


@pytest.fixture
def env(crm_env, smtp, mailbox):
    crm_env.write_tenant("acme", plugins=["channels", "email"], settings={"email": {**email_settings(smtp.port), **mailbox.settings()}})
    crm_env.write_tenant("beta", plugins=["channels"])
    crm_env.create_app()
    return crm_env


def mail(sender="ada@example.com", subject="Hello", body="Hi there", message_id=None, extra=""):
    mid = f"Message-ID: {message_id}\n" if message_id else ""
    return f"From: Ada Lovelace <{sender}>\nTo: sales@acme.test\nSubject: {subject}\n{mid}{extra}Content-Type: text/plain; charset=utf-8\n\n{body}\n"


def poll(env):
    return Scheduler(env.crm, holder="test").run_job("email:poll")


def messages(env):
    with in_tenant(env):
        return list(Message.select().order_by(Message.id))


def test_a_customers_reply_lands_in_the_same_thread_and_on_the_leads_timeline(env, admin, smtp, mailbox, captured_signals):
    lead = make_lead(env, email="ada@example.com")
    sent = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Our offer", "body": "Hi"}, status=201)
    drain(env)
    mailbox.deliver(mail(subject="Re: Our offer", body="Yes please", message_id="<reply-1@example.com>",
                         extra=f"In-Reply-To: {sent['message_id']}\nReferences: {sent['message_id']}\n"))
    with captured_signals("message_received") as received:
        assert poll(env) == ["acme"]  # only the tenant with the plugin on
    assert len(received) == 1 and received[0][2]["channel"] == "email"
    reply = messages(env)[-1]
    assert (reply.direction, reply.conversation_id, reply.message_id, reply.in_reply_to) == ("in", sent["conversation_id"], "<reply-1@example.com>", sent["message_id"])
    assert reply.body_text.strip() == "Yes please"
    with in_tenant(env):
        timeline = [(a.direction, a.subject) for a in Activity.select().where(Activity.lead == lead.id).order_by(Activity.id)]
    assert timeline == [("out", "Our offer"), ("in", "Re: Our offer")]
    poll(env)  # nothing new: nothing imported twice
    assert len(messages(env)) == 2
    # an answer to the reply goes on threading the whole conversation
    answer = admin("POST", "/messages", json={"channel": "email", "conversation_id": sent["conversation_id"], "body": "Great"}, status=201)
    drain(env)
    last = smtp.accepted[-1]
    assert last["In-Reply-To"] == "<reply-1@example.com>" and last["References"].split() == [sent["message_id"], "<reply-1@example.com>"]
    assert answer["subject"] == "Re: Our offer"


def test_threading_by_subject_and_sender_then_linking_or_a_new_lead(env, mailbox):
    with in_tenant(env):
        contact = create_record(Contact, {"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"})
    mailbox.deliver(mail(sender="grace@example.com", subject="Question", message_id="<q1@example.com>"))
    mailbox.deliver(mail(sender="GRACE@example.com", subject="RE: Question", message_id="<q2@example.com>"))  # no headers: subject + sender
    mailbox.deliver(mail(sender="new@example.org", subject="Pricing?", message_id="<n1@example.org>"))
    poll(env)
    rows = messages(env)
    assert len(rows) == 3 and rows[0].conversation_id == rows[1].conversation_id != rows[2].conversation_id
    with in_tenant(env):
        first = Conversation.get_by_id(rows[0].conversation_id)
        assert first.contact_id == contact.id and first.lead_id is None
        new_lead = Lead.get(Lead.email == "new@example.org")
        assert Conversation.get_by_id(rows[2].conversation_id).lead_id == new_lead.id and new_lead.source == "email"


def test_unknown_senders_make_no_lead_when_the_setting_says_so(env, smtp, mailbox):
    env.write_tenant("acme", plugins=["channels", "email"], settings={"email": {**email_settings(smtp.port), **mailbox.settings(unknown_sender="ignore")}})
    env.reload()
    mailbox.deliver(mail(sender="stranger@example.org", message_id="<s1@example.org>"))
    poll(env)
    with in_tenant(env):
        assert Lead.select().count() == 0
        assert Conversation.get().lead_id is None
    assert len(messages(env)) == 1


def test_a_failing_mailbox_is_counted_and_shown_then_nothing_is_missed(env, smtp, mailbox):
    """(A wrong password fails the same way, but dovecot then delays each next login by
    seconds: the outage is a closed port.)"""
    from tests.plugins.channels.conftest import free_port

    # the server is unreachable (an outage): nothing listens on that port
    broken = {**email_settings(smtp.port), **mailbox.settings(imap_port=free_port(), alert_after_failures=2)}
    env.write_tenant("acme", plugins=["channels", "email"], settings={"email": broken})
    env.reload()
    for i in range(3):
        mailbox.deliver(mail(subject=f"During the outage {i}", message_id=f"<o{i}@example.com>"))
        poll(env)
    with in_tenant(env):
        row = MailboxFolder.get()
    assert row.failures == 3 and "ConnectionRefusedError" in row.last_error
    client = env.client("acme")
    env.login(client, "acme", role="admin")
    page = client.get("/app/email/").get_data(as_text=True)
    assert f'data-mailbox-alert="{mailbox.folder}"' in page and "failed 3 polls in a row" in page

    env.write_tenant("acme", plugins=["channels", "email"], settings={"email": {**broken, "imap_port": mailbox.server.port}})
    env.reload()
    poll(env)
    assert sorted(m.subject for m in messages(env)) == [f"During the outage {i}" for i in range(3)]
    with in_tenant(env):
        row = MailboxFolder.get()
    assert row.failures == 0 and row.last_uid == 3 and row.imported == 3
    assert "data-mailbox-alert" not in client.get("/app/email/").get_data(as_text=True)


def test_batches_resume_at_the_last_uid_and_a_new_uidvalidity_imports_nothing_twice(env, smtp, mailbox):
    env.write_tenant("acme", plugins=["channels", "email"], settings={"email": {**email_settings(smtp.port), **mailbox.settings(fetch_batch=2)}})
    env.reload()
    for i in range(5):
        mailbox.deliver(mail(subject=f"M{i}", message_id=f"<m{i}@example.com>"))
    poll(env)
    assert [m.subject for m in messages(env)] == ["M0", "M1"]
    poll(env)
    poll(env)
    assert [m.subject for m in messages(env)] == [f"M{i}" for i in range(5)]
    with in_tenant(env):
        MailboxFolder.update(uidvalidity=1).execute()  # as if the server renumbered the folder
    for _ in range(3):
        poll(env)
    assert len(messages(env)) == 5  # read again, every Message-ID known: none imported twice
    with in_tenant(env):
        assert MailboxFolder.get().last_uid == 5


def test_html_mail_is_sanitised_and_auto_replies_are_flagged(env, mailbox):
    raw = ("From: bot@example.com\nTo: sales@acme.test\nSubject: Out of office\nMessage-ID: <ooo@example.com>\nAuto-Submitted: auto-replied\n"
           "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n<p onmouseover=\"steal()\">Away<script>alert(1)</script></p>\n")
    mailbox.deliver(raw)
    poll(env)
    message = messages(env)[0]
    assert "<script" not in message.body_html and "onmouseover" not in message.body_html and "Away" in message.body_html
    assert message.headers == {"Auto-Submitted": "auto-replied"}


def dsn(original_id: str, recipient: str = "ada@example.com") -> str:
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.com>
To: sales@acme.test
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{original_id.strip('<>')}>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown

--B
Content-Type: text/rfc822-headers

From: sales@acme.test
To: {recipient}
Subject: Our offer
Message-ID: {original_id}

--B--
"""


def test_a_bounce_fails_the_message_and_blocks_the_address_until_fixed(env, admin, smtp, mailbox, captured_signals):
    lead = make_lead(env, email="ada@example.com")
    sent = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Our offer", "body": "Hi"}, status=201)
    drain(env)
    mailbox.deliver(dsn(sent["message_id"]))
    with captured_signals("message_failed", "message_received") as seen:
        poll(env)
    answer = admin("GET", f"/messages/{sent['id']}")
    assert answer["status"] == "failed" and answer["failure_reason"].startswith("bounced: 5.1.1 550 5.1.1")
    assert [name for name, _, _ in seen] == ["message_failed"]  # the report itself is no conversation message
    assert len(messages(env)) == 1
    refused = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Again", "body": "Hi"}, status=422)
    assert "ada@example.com bounced (5.1.1" in refused["errors"]["json"]["to"][0]
    client = env.client("acme")
    env.login(client, "acme", role="admin")
    page = client.get("/app/email/").get_data(as_text=True)
    assert 'data-undeliverable="ada@example.com"' in page
    from crm_plugins.email.models import Undeliverable

    with in_tenant(env):
        row_id = Undeliverable.get().id
    assert client.post(f"/app/email/undeliverable/{row_id}/fixed", data={"csrf_token": env.csrf(client)}).status_code == 302
    admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Again", "body": "Hi"}, status=201)


def test_an_auto_reply_is_flagged_and_makes_no_lead(env, mailbox, captured_signals):
    mailbox.deliver(mail(sender="away@example.org", subject="Out of office", message_id="<away@example.org>", extra="Auto-Submitted: auto-replied\n"))
    with captured_signals("message_received") as seen:
        poll(env)
    assert [data["automated"] for _, _, data in seen] == [True]
    with in_tenant(env):
        assert Lead.select().count() == 0


def test_a_reply_is_announced_live_to_the_inbox_and_the_leads_page(env, mailbox):
    from crmcore import sdk

    lead = make_lead(env, email="ada@example.com")
    with in_tenant(env) as tenant:
        sub = sdk.live_subscribe(tenant, ["channels", "list:conversation", f"record:lead:{lead.id}"], last_id=sdk.live_since_id())
    try:
        mailbox.deliver(mail(subject="Question", message_id="<live-1@example.com>"))
        poll(env)
        events = []
        while (event := sub.get(timeout=2)) is not None:
            events.append((event.topic, event.data))
            if any(t == f"record:lead:{lead.id}" and d.get("kind") == "timeline" for t, d in events) and {t for t, _ in events} >= {"channels", "list:conversation"}:
                break
    finally:
        sub.close()
    topics = {t: d for t, d in events}
    assert topics["channels"]["status"] == "received" and topics["channels"]["channel"] == "email"
    assert topics["list:conversation"]["kind"] == "updated"
    assert "timeline" in [d["kind"] for t, d in events if t == f"record:lead:{lead.id}"]  # the lead's page shows it at once


def test_malformed_mail_and_unknown_charsets_are_imported_as_well_as_they_can_be(env, mailbox):
    mailbox.deliver("From: odd@example.org\nSubject: =?x-unknown?Q?Hi?=\nMessage-ID: <odd@example.org>\n"
                    "Content-Type: text/plain; charset=x-unknown-42\nContent-Transfer-Encoding: base64\n\n!!!not base64\n")
    mailbox.deliver("no headers at all, just text\n")
    mailbox.deliver(mail(subject="After them", message_id="<after@example.com>"))
    poll(env)
    rows = messages(env)
    assert [m.subject for m in rows][-1] == "After them" and len(rows) == 3  # nothing blocks the folder
    with in_tenant(env):
        assert MailboxFolder.get().failures == 0


def test_an_admin_polls_the_mailbox_now_through_the_queue(env, mailbox):
    mailbox.deliver(mail(subject="Now", message_id="<now@example.com>"))
    client = env.client("acme")
    env.login(client, "acme", role="admin")
    assert client.post("/app/email/poll", data={"csrf_token": env.csrf(client)}).status_code == 302
    assert messages(env) == []  # queued, not done in the request
    drain(env)
    assert [m.subject for m in messages(env)] == ["Now"]
    page = client.get("/app/email/").get_data(as_text=True)
    assert f'data-folder="{mailbox.folder}"' in page
