"""The inbox of every channel: the website chat's conversations (kept in the chat's own
tables) listed beside email's in one query, filtered by channel, status and queue, with
the same visibility rule, assignment and canned responses."""

from __future__ import annotations

import re
from typing import Any

import pytest

import crm_plugins.channels.contrib as channels
from crm_plugins.channels.models import Conversation
from crm_plugins.chat import service as chat_service
from crm_plugins.chat.models import ChatConversation
from crmcore import db
from crmcore.sdk import Lead, User, create_record
from tests.plugins.channels.conftest import email_settings, in_tenant
from tests.plugins.chat.conftest import Chat, chat_settings
from tests.web.test_leads_pages import count_queries


@pytest.fixture
def env(crm_env: Any, smtp: Any) -> Any:
    settings = {"email": email_settings(smtp.port), "channels": {"canned_responses": ["Thanks, we are on it."]},
                **chat_settings(canned_responses=["One moment please."])}
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email", "chat"], settings=settings)
    crm_env.write_tenant("beta", name="Beta Co", plugins=["chat"], settings=chat_settings())
    crm_env.create_app()
    return crm_env


def signed_in(env: Any, role: str = "admin", email: str | None = None) -> Any:
    client = env.client("acme")
    env.login(client, "acme", role=role, email=email)
    return client


def email_in(env: Any, address: str, subject: str) -> int:
    with in_tenant(env) as tenant:
        return channels.receive(tenant, "email", address=address, subject=subject, body_text="Hello?",
                                message_id=f"<{subject.replace(' ', '.')}@example.com>").conversation_id


def rows(client: Any, query: str = "") -> list[str]:
    page = client.get(f"/app/conversations/?{query}")
    assert page.status_code == 200
    return re.findall(r'<tr data-conversation="([^"]+)"', page.get_data(as_text=True))


def test_chat_and_email_conversations_share_one_list_filtered_by_channel_and_status(env):
    visitor = Chat(env).start(name="Vera Visitor")
    chat_id = visitor["conversation"]["id"]
    email_id = email_in(env, "ada@example.com", "Quote please")
    client = signed_in(env)
    assert rows(client) == [str(email_id), f"website:{chat_id}"]  # the newest message first
    page = client.get("/app/conversations/").get_data(as_text=True)
    assert re.search(r'<option value="website"\s*>Website chat</option>', page) and "Vera Visitor" in page
    assert f"/app/chat/?view=all&amp;status=any&amp;c={chat_id}" in page  # the chat's live thread
    assert rows(client, "channel=website") == [f"website:{chat_id}"]
    assert rows(client, "channel=email") == [str(email_id)]
    with in_tenant(env) as tenant:
        chat_service.set_status(tenant, ChatConversation.get_by_id(chat_id), "resolved")
    assert rows(client, "status=resolved") == [f"website:{chat_id}"]
    assert rows(client, "status=open") == [str(email_id)]
    # the chat's own inbox is unchanged, and its canned responses are the inbox's too
    chat_page = client.get(f"/app/chat/?status=any&c={chat_id}").get_data(as_text=True)
    assert "One moment please." in chat_page and "Thanks, we are on it." in chat_page
    assert "Every channel's conversations" in chat_page
    # one Inbox in the navigation: the inbox of every channel
    assert re.findall(r'<a[^>]*href="(/app/[a-z]+/)"[^>]*>\s*Inbox\s*<', page) == ["/app/conversations/"]


def test_queues_and_assignment_are_the_same_for_every_channel(env):
    chat_id = Chat(env).start(name="Vera Visitor")["conversation"]["id"]
    email_id = email_in(env, "ada@example.com", "Quote please")
    client = signed_in(env, email="boss@acme.test")
    with in_tenant(env):
        boss = User.get(User.email == "boss@acme.test")
        viewer = User.create(email="viewer@acme.test", role="viewer")
    csrf = env.csrf(client)
    answer = client.post(f"/app/conversations/{email_id}/assign", data={"csrf_token": csrf, "assignee_id": str(boss.id)})
    assert answer.status_code == 302
    assert rows(client, "queue=mine") == [str(email_id)]
    assert rows(client, "queue=unassigned") == [f"website:{chat_id}"]
    with in_tenant(env) as tenant:
        chat_service.assign(tenant, ChatConversation.get_by_id(chat_id), boss.id)
    assert rows(client, "queue=mine") == [str(email_id), f"website:{chat_id}"]
    assert rows(client, "queue=unassigned") == []
    # a viewer, someone of no tenant, or nonsense: 422 and nothing changes; empty: the queue
    for bad in (str(viewer.id), "999999", "x"):
        answer = client.post(f"/app/conversations/{email_id}/assign", data={"csrf_token": csrf, "assignee_id": bad})
        assert answer.status_code == 422 and "no active agent" in answer.get_data(as_text=True)
    client.post(f"/app/conversations/{email_id}/assign", data={"csrf_token": csrf, "assignee_id": ""})
    assert rows(client, "queue=unassigned") == [str(email_id)]
    page = client.get(f"/app/conversations/{email_id}").get_data(as_text=True)
    assert 'data-canned="#f-body"' in page and "Thanks, we are on it." in page
    reader = signed_in(env, role="viewer")
    assert reader.post(f"/app/conversations/{email_id}/assign", data={"csrf_token": env.csrf(reader), "assignee_id": ""}).status_code == 403


def test_an_agent_who_sees_own_records_only_sees_only_those_conversations(env):
    env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "email", "chat"],
                     settings={"email": email_settings(1025), "core": {"agents_see_own_only": True}, **chat_settings()})
    env.reload()
    agent = signed_in(env, role="agent", email="agent@acme.test")
    with in_tenant(env):
        other = User.create(email="other@acme.test", role="agent")
        create_record(Lead, {"name": "Theirs", "email": "theirs@example.com", "owner": other.id})
    hidden = email_in(env, "theirs@example.com", "Hidden")
    shown = email_in(env, "new@example.com", "Shown")  # a new lead nobody owns
    chat_id = Chat(env).start(name="Vera")["conversation"]["id"]
    assert rows(agent) == [f"website:{chat_id}", str(shown)]
    assert agent.get(f"/app/conversations/{hidden}").status_code == 404


def test_one_query_for_the_list_whatever_the_number_of_conversations(env):
    client = signed_in(env)
    client.get("/app/conversations/")

    def statements() -> int:
        with count_queries(db.database.obj) as seen:
            assert client.get("/app/conversations/").status_code == 200
        return len(seen)

    email_in(env, "a@example.com", "One")
    Chat(env).start(name="One")
    few = statements()
    for i in range(8):
        email_in(env, f"b{i}@example.com", f"Many {i}")
        Chat(env).start(name=f"Visitor {i}")
    assert statements() == few


def test_pages_of_the_list_and_a_damaged_cursor(env):
    for i in range(3):
        email_in(env, f"p{i}@example.com", f"Page {i}")
        Chat(env).start(name=f"Visitor {i}")
    client = signed_in(env)
    import crm_plugins.channels.views as views

    views.PAGE_SIZE, before = 4, views.PAGE_SIZE
    try:
        seen, url = [], "/app/conversations/"
        while url:
            html = client.get(url).get_data(as_text=True)
            seen += re.findall(r'<tr data-conversation="([^"]+)"', html)
            found = re.search(r'<a href="(/app/conversations/\?[^"]*cursor=[^"]+)">Older</a>', html)
            url = found.group(1).replace("&amp;", "&") if found else None
    finally:
        views.PAGE_SIZE = before
    assert len(seen) == 6 and len(set(seen)) == 6
    assert client.get("/app/conversations/?cursor=garbage").status_code == 422


def test_the_website_channel_exists_only_with_both_plugins_and_sends_nothing(env):
    client = signed_in(env)
    api_token = env.token("acme")
    lead_answer = client.post("/api/v1/leads", json={"name": "Ada"}, headers={"Authorization": f"Bearer {api_token}"})
    refused = client.post("/api/v1/messages", json={"channel": "website", "entity": "lead", "record_id": lead_answer.get_json()["id"], "body": "hi"},
                          headers={"Authorization": f"Bearer {api_token}"})
    assert refused.status_code == 422 and "website" in str(refused.get_json())
    beta = env.client("beta")
    env.login(beta, "beta")
    assert beta.get("/app/conversations/").status_code == 404  # chat alone: its own inbox only
    assert beta.get("/app/chat/").status_code == 200
    with in_tenant(env):
        assert Conversation.select().count() == 0
