"""The inbox of every channel, a conversation's page with its reply box, the email panel
on a lead's page and its compose form."""

from __future__ import annotations

from crm_plugins.channels.models import Message
from tests.plugins.channels.conftest import drain, in_tenant, make_lead


def signed_in(env, role="admin"):
    client = env.client("acme")
    env.login(client, "acme", role=role)
    return client


def test_compose_from_a_lead_page_then_reply_from_the_conversation(env, smtp):
    lead = make_lead(env, "Ada Lovelace", email="ada@example.com")
    client = signed_in(env)
    page = client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert "data-email-panel" in page and "Write an email" in page
    csrf = env.csrf(client)
    answer = client.post(f"/app/email/compose/lead/{lead.id}", data={"csrf_token": csrf, "to": "ada@example.com", "subject": "Hello", "body": "First", "idempotency_key": "p1"})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/app/leads/{lead.id}")
    client.post(f"/app/email/compose/lead/{lead.id}", data={"csrf_token": csrf, "to": "ada@example.com", "subject": "Hello", "body": "First", "idempotency_key": "p1"})
    drain(env)
    assert len(smtp.accepted) == 1
    page = client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert 'data-status="sent"' in page and "Hello" in page
    with in_tenant(env):
        conversation_id = Message.get().conversation_id
    inbox = client.get("/app/conversations/?channel=email").get_data(as_text=True)
    assert f'data-conversation="{conversation_id}"' in inbox and "Ada Lovelace" in inbox
    assert f'data-conversation="{conversation_id}"' not in client.get("/app/conversations/?channel=sms").get_data(as_text=True)
    answer = client.post(f"/app/conversations/{conversation_id}/reply", data={"csrf_token": csrf, "body": "Second"})
    assert answer.status_code == 302
    drain(env)
    assert [m["Subject"] for m in smtp.accepted] == ["Hello", "Re: Hello"]
    assert smtp.accepted[1]["In-Reply-To"] == smtp.accepted[0]["Message-ID"]
    page = client.get(f"/app/conversations/{conversation_id}").get_data(as_text=True)
    assert page.count("data-message=") == 2 and "Second" in page


def test_bad_compose_input_is_a_422_page_and_nothing_is_sent(env, smtp):
    lead = make_lead(env, email="ada@example.com")
    client = signed_in(env)
    csrf = env.csrf(client)
    answer = client.post(f"/app/email/compose/lead/{lead.id}", data={"csrf_token": csrf, "to": "nope", "subject": "Hi", "body": "x"})
    assert answer.status_code == 422 and "nope" in answer.get_data(as_text=True)
    assert client.post("/app/conversations/999/reply", data={"csrf_token": csrf, "body": "x"}).status_code == 404
    assert client.post("/app/email/compose/lead/999999", data={"csrf_token": csrf, "body": "x"}).status_code == 404
    with in_tenant(env):
        assert Message.select().count() == 0


def test_a_viewer_reads_but_cannot_write(env):
    lead = make_lead(env, email="ada@example.com")
    client = signed_in(env, role="viewer")
    assert client.get("/app/conversations/").status_code == 200
    assert "Write an email" not in client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert client.post(f"/app/email/compose/lead/{lead.id}", data={"csrf_token": env.csrf(client), "body": "x"}).status_code == 403


def test_an_admin_sends_a_test_email_to_themselves(env, smtp):
    client = env.client("acme")
    env.login(client, "acme", role="admin", email="boss@example.com")
    answer = client.post("/app/email/test", data={"csrf_token": env.csrf(client)})
    assert answer.status_code == 302 and "/app/conversations/" in answer.headers["Location"]
    drain(env)
    assert [(m["Subject"], m["To"]) for m in smtp.accepted] == [("CRM test email", "boss@example.com")]
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert 'data-status="sent"' in page
    agent = signed_in(env, role="agent")
    assert agent.post("/app/email/test", data={"csrf_token": env.csrf(agent)}).status_code == 403
