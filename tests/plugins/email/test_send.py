"""Email out: from the API through the outbox to a real SMTP server (aiosmtpd on
loopback): headers, threading, the timeline, retries and permanent failures."""

from __future__ import annotations

from crm_plugins.channels.models import Message
from crmcore.sdk import Activity
from tests.plugins.channels.conftest import drain, in_tenant, make_lead


def send(admin, lead, **extra):
    body = {"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Our offer", "body": "Hello Ada", **extra}
    body = {k: v for k, v in body.items() if v is not None}
    return admin("POST", "/messages", json=body, status=201)


def test_an_email_from_a_lead_is_sent_once_with_its_message_id_and_lands_on_the_timeline(env, admin, smtp, captured_signals):
    lead = make_lead(env, email="ada@example.com")
    with captured_signals("message_sent") as sent:
        queued = send(admin, lead, idempotency_key="k-1")
        again = send(admin, lead, idempotency_key="k-1")  # the same key: the same message
        assert queued["status"] == "queued" and again["id"] == queued["id"]
        assert queued["message_id"].startswith("<") and queued["message_id"].endswith("@acme.test>")
        drain(env)
    assert len(smtp.accepted) == 1
    mail = smtp.accepted[0]
    assert mail["Message-ID"] == queued["message_id"]
    assert mail["To"] == "ada@example.com" and mail["From"] == "Acme Sales <sales@acme.test>" and mail["Subject"] == "Our offer"
    assert mail.get_content().strip() == "Hello Ada"
    status = admin("GET", f"/messages/{queued['id']}")
    assert status["status"] == "sent" and status["sent_at"]
    assert [(s[2]["channel"], s[2]["message"].id) for s in sent] == [("email", queued["id"])]
    with in_tenant(env):
        activity = Activity.get(Activity.lead == lead.id)
    assert (activity.kind, activity.channel, activity.direction, activity.subject, activity.outcome) == ("email", "email", "out", "Our offer", "sent")
    page = admin("GET", f"/messages?entity=lead&record_id={lead.id}")
    assert [m["id"] for m in page["items"]] == [queued["id"]]


def test_a_reply_in_the_conversation_threads_with_in_reply_to_and_references(env, admin, smtp):
    lead = make_lead(env, email="ada@example.com")
    first = send(admin, lead)
    second = admin("POST", "/messages", json={"channel": "email", "conversation_id": first["conversation_id"], "body": "Any news?"}, status=201)
    third = admin("POST", "/messages", json={"channel": "email", "conversation_id": first["conversation_id"], "body": "Still there?"}, status=201)
    drain(env)
    mails = {m["Message-ID"]: m for m in smtp.accepted}
    assert mails[second["message_id"]]["In-Reply-To"] == first["message_id"]
    assert mails[second["message_id"]]["Subject"] == "Re: Our offer"
    assert mails[third["message_id"]]["References"].split() == [first["message_id"], second["message_id"]]
    assert mails[third["message_id"]]["In-Reply-To"] == second["message_id"]


def test_a_temporary_failure_is_retried_and_a_permanent_one_fails_with_the_servers_reason(env, admin, smtp, captured_signals):
    lead = make_lead(env, email="ada@example.com")
    smtp.replies = ["451 4.3.0 Try again later"]
    retried = send(admin, lead)
    drain(env)
    assert admin("GET", f"/messages/{retried['id']}")["status"] == "sent"
    assert smtp.attempts == 2 and len(smtp.accepted) == 1

    smtp.replies = ["550 5.1.1 Mailbox unknown"]
    with captured_signals("message_failed") as failed:
        doomed = send(admin, lead)
        drain(env)
    answer = admin("GET", f"/messages/{doomed['id']}")
    assert answer["status"] == "failed" and "550 5.1.1 Mailbox unknown" in answer["failure_reason"]
    assert [s[2]["reason"] for s in failed] == [answer["failure_reason"]]
    assert len(smtp.accepted) == 1
    with in_tenant(env):
        outcome = Activity.get(Activity.id == Message.get_by_id(doomed["id"]).activity_id).outcome
    assert outcome.startswith("failed: 550")


def test_always_temporary_failures_end_failed_after_the_tenants_attempts(env, admin, smtp):
    lead = make_lead(env, email="ada@example.com")
    smtp.replies = ["421 4.7.0 Busy"] * 3  # send_attempts = 3
    message = send(admin, lead)
    drain(env)
    answer = admin("GET", f"/messages/{message['id']}")
    assert answer["status"] == "failed" and "gave up after 3 attempts" in answer["failure_reason"] and "421" in answer["failure_reason"]


def test_bad_input_is_a_422_and_nothing_is_queued(env, admin, smtp):
    lead = make_lead(env, email="ada@example.com")
    cases = [
        ({"subject": "Hi\r\nBcc: all@example.com"}, "subject"),
        ({"to": ["not-an-address"]}, "to"),
        ({"to": ["Eve\r\nBcc: x@example.com <eve@example.com>"]}, "to"),
        ({"cc": ["a@@example.com"]}, "cc"),
        ({"body": "", "html": ""}, "body"),
        ({"channel": "fax"}, "channel"),
    ]
    for extra, field in cases:
        answer = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "x", "body": "y", **extra}, status=422)
        assert field in answer["errors"]["json"], (extra, answer)
    admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": 999999, "body": "y"}, status=404)
    admin("POST", "/messages", json={"channel": "email", "body": "y"}, status=422)
    with in_tenant(env):
        assert Message.select().count() == 0


def test_html_is_sanitised_before_it_is_stored_and_sent(env, admin, smtp):
    lead = make_lead(env, email="ada@example.com")
    message = send(admin, lead, body=None, html='<p onclick="x()">Hi <b>Ada</b><script>alert(1)</script><a href="javascript:alert(2)">x</a></p>')
    drain(env)
    stored = admin("GET", f"/messages/{message['id']}")
    assert "<script" not in stored["body_html"] and "onclick" not in stored["body_html"] and "javascript:" not in stored["body_html"]
    assert "<b>Ada</b>" in stored["body_html"] and stored["body_text"].startswith("Hi Ada")
    html = smtp.accepted[0].get_body(("html",)).get_content()
    assert "<script" not in html and "<b>Ada</b>" in html


def test_a_tenant_without_the_plugins_sees_none_of_it(env):
    from tests.plugins.channels.conftest import Api, token

    beta = Api(env, "beta", token(env, "beta"))
    beta("GET", "/messages?conversation_id=1", status=404)
    beta("GET", "/templates", status=404)


def test_many_messages_share_one_drain_task_and_each_is_sent_once_in_order(env, admin, smtp):
    from crmcore.models import Task

    leads = [make_lead(env, f"Lead{i:02d} X", email=f"lead{i:02d}@example.com") for i in range(12)]
    smtp.replies = ["250 OK"] * 4 + ["451 4.3.0 busy"]  # the 5th waits for its retry, the others go on
    queued = [send(admin, lead, subject=f"S{i:02d}") for i, lead in enumerate(leads)]
    with in_tenant(env):
        assert Task.select().where(Task.kind == "channels.drain").count() == 1  # not one per message
    drain(env)
    subjects = [m["Subject"] for m in smtp.accepted]
    assert sorted(subjects) == [f"S{i:02d}" for i in range(12)] and len(subjects) == 12
    assert subjects[:4] == ["S00", "S01", "S02", "S03"] and subjects[-1] == "S04"  # the retried one last
    assert {admin("GET", f"/messages/{m['id']}")["status"] for m in queued} == {"sent"}
    assert admin("GET", f"/messages/{queued[4]['id']}")["attempts"] == 2


def test_the_compose_form_answers_only_for_records_the_agent_may_see(env, smtp):
    """Under agents_see_own_only a contact (not only a lead or deal) someone else owns is
    a 404 on the compose form, as a missing one is; one nobody owns can be written to."""
    from crmcore import auth
    from crmcore.sdk import Contact, create_record
    from tests.plugins.channels.conftest import email_settings

    env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email"],
                     settings={"email": email_settings(smtp.port), "core": {"agents_see_own_only": True}})
    env.reload()
    client = env.client("acme")
    env.login(client, role="agent")
    with in_tenant(env) as tenant:
        boss = auth.create_user(tenant, "boss@acme.test", "secret-pw", role="manager")
        theirs = create_record(Contact, {"first_name": "Theirs", "email": "theirs@example.com", "owner": boss.id})
        nobodys = create_record(Contact, {"first_name": "Open", "email": "open@example.com"})
    form = {"to": "x@example.com", "subject": "Hello", "body": "Hi", "csrf_token": env.csrf(client)}
    assert client.post(f"/app/email/compose/contact/{theirs.id}", data=form).status_code == 404
    assert client.post("/app/email/compose/contact/987654", data=form).status_code == 404
    assert client.post(f"/app/email/compose/contact/{nobodys.id}", data=form).status_code == 302
