"""Email and SMS sentiment: the channels plugin's inbound messages (any channel) are
scored through the task queue, per conversation, shown on the record and in the API;
a tenant without the channels plugin, or without insights, sees none of it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugins.insights.conftest import drain, in_tenant


@pytest.fixture
def env(crm_env: Any) -> Any:
    email = {"from_address": "sales@acme.test", "smtp_host": "127.0.0.1", "smtp_port": 2525, "smtp_security": "none"}
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["insights", "channels", "email"], settings={"insights": {"debounce_seconds": 0}, "email": email})
    crm_env.write_tenant("beta", plugins=["channels", "email"], settings={"email": email})
    crm_env.create_app()
    return crm_env


def _receive(tenant: Any, subject: str, body: str, address: str = "ann@example.com", **extra: Any) -> Any:
    import crm_plugins.channels.contrib as channels

    return channels.receive(tenant, "email", address=address, subject=subject, body_text=body, message_id=f"<{subject}-{body[:10]}@x>", **extra)


def test_inbound_messages_are_scored_per_conversation_and_shown_on_the_record(env):
    from crm_plugins.insights import conversations, interactions
    from crm_plugins.insights.models import InteractionSentiment
    from crmcore.sdk import Contact, create_record

    with in_tenant(env) as tenant:
        ann = create_record(Contact, {"first_name": "Ann", "last_name": "Angry", "email": "ann@example.com"})
        first = _receive(tenant, "Invoice", "Very disappointed with the billing error, this is unacceptable.")
        _receive(tenant, "Invoice", "Still no answer, we are angry and will cancel.", in_reply_to=first.message_id)
        happy = _receive(tenant, "Pilot", "Great pilot, the team loves it!")
        _receive(tenant, "Urlaub", "Ich bin bis Montag nicht im Büro.", headers={"Auto-Submitted": "auto-replied"})
        _receive(tenant, "Angebot", "Wir sind mit dem Angebot leider nicht zufrieden und warten auf Antwort.")
    drain(env)
    with in_tenant(env) as tenant:
        rows = list(InteractionSentiment.select().where(InteractionSentiment.entity == "message").order_by(InteractionSentiment.record_id))
        assert len(rows) == 4  # the auto-reply is not the customer's mood
        assert {r.lead_id for r in rows} == {None} and {r.contact_id for r in rows} == {None}  # the timeline activity counts for the record
        by_conversation = conversations.of_record(tenant, "contact", ann.id)
        subjects = {c["subject"]: c for c in by_conversation}
        assert set(subjects) == {"Invoice", "Pilot", "Angebot"}
        invoice = subjects["Invoice"]
        assert invoice["channel"] == "email" and invoice["scored"] == 2 and invoice["average"] < -0.5 and invoice["latest_score"] < 0
        assert subjects["Pilot"]["average"] > 0.5 and subjects["Pilot"]["conversation_id"] == happy.conversation_id
        assert subjects["Angebot"]["average"] is None and subjects["Angebot"]["not_scored"] == 1
        # the record's own trend has each message once (its timeline activity), not twice
        assert interactions.trend("contact", ann.id)["scored"] == 3
    client = env.client("acme")
    env.login(client, "acme", role="agent")
    page = client.get(f"/app/contacts/{ann.id}").get_data(as_text=True)
    assert "Conversations" in page and f'data-conversation="{invoice["conversation_id"]}"' in page and "Invoice" in page
    headers = {"Authorization": f"Bearer {env.token('acme', 'viewer')}"}
    body = client.get(f"/api/v1/insights/sentiment/contact/{ann.id}/conversations", headers=headers).get_json()
    assert {c["subject"]: c["scored"] for c in body} == {"Invoice": 2, "Pilot": 1, "Angebot": 0}
    assert client.get("/api/v1/insights/sentiment/company/1/conversations", headers=headers).status_code == 404
    assert client.get("/api/v1/insights/sentiment/contact/999999/conversations", headers=headers).status_code == 404
    assert "/api/v1/insights/sentiment/{entity}/{record_id}/conversations" in client.get("/api/v1/openapi.json").get_json()["paths"]
    with in_tenant(env):  # the person's conversations' scores go with them
        from crm_plugins.insights import privacy

        exported = privacy.export([], [ann.id])[0].data["sentiments"]
        assert sorted(r["entity"] for r in exported) == ["activity"] * 5 + ["message"] * 4  # 5 timeline entries (the auto-reply too)
        privacy.erase([], [ann.id])
        assert not InteractionSentiment.select().where(InteractionSentiment.entity == "message").exists()


def test_a_tenant_without_insights_gets_no_scores(env):
    from crm_plugins.insights.models import InteractionSentiment

    with in_tenant(env, "beta") as tenant:
        _receive(tenant, "Hello", "Terrible service, we are furious.")
    drain(env)
    with in_tenant(env, "beta"):
        assert InteractionSentiment.select().count() == 0
    beta = env.client("beta")
    headers = {"Authorization": f"Bearer {env.token('beta', 'admin')}"}
    assert beta.get("/api/v1/insights/sentiment/contact/1/conversations", headers=headers).status_code == 404


def test_reply_draft_offline_offered_to_edit_and_send(env):
    from crm_plugins.insights.models import GeneratedTextRecord
    from crmcore.sdk import Contact, create_record

    with in_tenant(env) as tenant:
        ann = create_record(Contact, {"first_name": "Ann", "last_name": "Angry", "email": "ann@example.com"})
        angry = _receive(tenant, "Invoice", "The invoice is wrong again. We are very disappointed and need a corrected invoice this week. Call me at +44 20 7946 0958.")
        other = create_record(Contact, {"first_name": "Bob", "last_name": "B", "email": "bob@example.com"})
        bobs = _receive(tenant, "Hi", "Hello there", address="bob@example.com")
    drain(env)
    client = env.client("acme")
    env.login(client, "acme", role="agent")
    page = client.get(f"/app/contacts/{ann.id}").get_data(as_text=True)
    assert "Draft a reply" in page
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {"csrf_token": csrf, "entity": "contact", "record_id": ann.id}
    # a conversation of another record is not this record's to answer
    assert client.post("/app/insights/replies", data={**form, "conversation_id": bobs.conversation_id}).status_code == 404
    assert client.post("/app/insights/replies", data={**form, "conversation_id": "x"}).status_code == 422
    assert client.post("/app/insights/replies", data={**form, "conversation_id": angry.conversation_id}).status_code == 302
    assert "Reply draft requested" in client.get(f"/app/contacts/{ann.id}").get_data(as_text=True)
    drain(env)
    with in_tenant(env):
        draft = GeneratedTextRecord.get(GeneratedTextRecord.purpose == "reply")
        assert (draft.status, draft.source, draft.conversation_id) == ("done", "template", angry.conversation_id)
        assert draft.text.startswith("Hello,") and "sorry for the trouble" in draft.text and "7946" not in draft.text
    page = client.get(f"/app/contacts/{ann.id}").get_data(as_text=True)
    assert f'action="/app/conversations/{angry.conversation_id}/reply"' in page and "sorry for the trouble" in page
    assert "<strong>Summary</strong>" not in page  # a reply draft is not the record's summary
    headers = {"Authorization": f"Bearer {env.token('acme', 'agent')}"}
    body = client.post("/api/v1/insights/replies", json={"entity": "contact", "record_id": ann.id, "conversation_id": angry.conversation_id}, headers=headers)
    assert body.status_code == 202 and body.get_json()["purpose"] == "reply"
    assert client.post("/api/v1/insights/replies", json={"entity": "contact", "record_id": other.id, "conversation_id": angry.conversation_id}, headers=headers).status_code == 404
    assert client.post("/api/v1/insights/replies", json={"entity": "company", "record_id": 1, "conversation_id": 1}, headers=headers).status_code == 422
