"""The chat's part of privacy requests and merges, through the real API endpoints: a
website visitor who became a lead is exported (conversation and score), erased (visitor,
messages, attachment files) and merged (conversations follow the kept lead)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from crm_plugins.chat.models import ChatAttachment, ChatConversation, ChatMessage
from crm_plugins.chat.privacy import ERASED_MESSAGE
from crmcore import hookimpl
from crmcore.entities.models import AuditEntry, Lead

from .conftest import Chat, chat_settings, in_tenant, run_tasks

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PERSONAL = ("ada", "lovelace", "7946", "engines", "shot.png", "/pricing")


class Admin:
    """The tenant's admin, speaking JSON to the API with a bearer token."""

    def __init__(self, crm_env: Any, slug: str = "acme") -> None:
        self.client = crm_env.client(slug)
        self.headers = {"Authorization": f"Bearer {crm_env.token(slug, 'admin')}"}

    def get(self, url: str) -> Any:
        return self.client.get(url, headers=self.headers)

    def post(self, url: str, json: Any = None) -> Any:
        return self.client.post(url, json=json, headers=self.headers)


@pytest.fixture
def env(crm_env: Any) -> Any:
    """acme with chat and scoring on (rescoring at once); plain with neither."""
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["chat", "scoring"], settings={**chat_settings(assistant_delay_seconds=3600), "scoring": {"debounce_seconds": 0}})
    crm_env.write_tenant("plain", name="Plain Ltd")
    crm_env.create_app()
    return crm_env


def visitor_lead(env: Any, chat: Chat, name: str, email: str, phone: str, text: str, upload: bool = False) -> dict[str, Any]:
    """A visitor who chats (and maybe sends a file) and thereby becomes a lead."""
    session = chat.start(name=name, email=email, phone=phone, page_url=f"https://shop.example/pricing?who={name.split()[0].lower()}")
    token = session["token"]
    assert chat.say(token, text).status_code == 201
    if upload:
        form = {"file": (io.BytesIO(PNG), "shot.png")}
        sent = chat.client.post("/api/v1/chat/public/attachments", data=form, headers=chat.headers(token), content_type="multipart/form-data")
        assert sent.status_code == 201, sent.get_data(as_text=True)
    with in_tenant(env):
        conversation = ChatConversation.get_by_id(session["conversation"]["id"])
        assert conversation.lead_id is not None
        return {"token": token, "conversation_id": conversation.id, "lead_id": conversation.lead_id}


def attachment_file(env: Any, conversation_id: int) -> Any:
    from crm_plugins.chat import service

    with in_tenant(env) as tenant:
        attachment = ChatAttachment.select().join(ChatMessage, on=(ChatAttachment.message == ChatMessage.id)).where(ChatMessage.conversation == conversation_id).get()
        return service.attachment_path(tenant, attachment)


def test_export_then_erase_a_chat_visitor_who_became_a_lead(env: Any) -> None:
    chat, admin = Chat(env), Admin(env)
    ada = visitor_lead(env, chat, "Ada Lovelace", "ada@example.com", "+44 20 7946 0018", "Do you sell analytical engines?", upload=True)
    bob = visitor_lead(env, chat, "Charles Babbage", "charles@example.com", "+44 20 7946 0999", "Difference engines, please")
    run_tasks(env)  # the lead's score
    path = attachment_file(env, ada["conversation_id"])
    assert path.exists()

    data = admin.get(f"/api/v1/leads/{ada['lead_id']}/export").json
    assert data["errors"] == {}
    [conversation] = data["plugins"]["chat"]["conversations"]
    assert conversation["id"] == ada["conversation_id"] and conversation["visitor_email"] == "ada@example.com"
    assert conversation["visitor_name"] == "Ada Lovelace" and conversation["visitor_phone"] == "+442079460018"
    texts = [m["content"] for m in conversation["messages"]]
    assert "Do you sell analytical engines?" in texts
    [attached] = [m["attachment"] for m in conversation["messages"] if m["attachment"]]
    assert attached["name"] == "shot.png" and attached["size"] == len(PNG) and attached["content_type"] == "image/png"
    [score] = data["plugins"]["scoring"]["scores"]
    assert score["lead_id"] == ada["lead_id"] and score["grade"] in "ABCD" and score["factors"]
    assert data["plugins"]["scoring"]["history"][0]["lead_id"] == ada["lead_id"]
    assert "charles" not in json.dumps(data).lower()

    inbox = env.crm.hub.subscribe(env.tenant("acme").id, ["chat:inbox"])
    erased = admin.post(f"/api/v1/leads/{ada['lead_id']}/erase")
    assert erased.status_code == 200, erased.get_data(as_text=True)
    heard = inbox.get(timeout=5)  # open inboxes show the anonymised conversation
    inbox.close()
    assert heard is not None and heard.data["event"] == "erased" and heard.data["conversation"]["visitor_email"] is None
    counts = erased.json["erased"]
    assert counts["chat_conversation"] == 1 and counts["chat_attachment"] == 1 and counts["chat_message"] >= 3
    assert counts["scoring_lead_score"] == 1 and counts["scoring_history"] >= 1

    assert not path.exists()  # the file is gone from disk
    with in_tenant(env):
        row = ChatConversation.get_by_id(ada["conversation_id"])
        assert (row.visitor_name, row.visitor_email, row.visitor_phone, row.page_url) == ("", None, None, "")
        assert row.lead_id == ada["lead_id"]  # the (anonymised) lead keeps its conversation
        assert {m.content for m in ChatMessage.select().where(ChatMessage.conversation == row.id)} == {ERASED_MESSAGE}
        assert not ChatAttachment.select().exists()  # only Ada sent a file
        assert Lead.get_by_id(ada["lead_id"]).name == "Erased"
        entry = AuditEntry.get((AuditEntry.entity == "lead") & (AuditEntry.entity_id == ada["lead_id"]) & (AuditEntry.action == "erase"))
        assert entry.changes["erased"][1]["chat_message"] == counts["chat_message"]
        # The other visitor keeps everything.
        other = ChatConversation.get_by_id(bob["conversation_id"])
        assert other.visitor_email == "charles@example.com"
        assert "Difference engines, please" in {m.content for m in ChatMessage.select().where(ChatMessage.conversation == other.id)}
    # The visitor's old token opens nothing any more.
    assert chat.client.get("/api/v1/chat/public/messages", headers=chat.headers(ada["token"])).status_code in (401, 404)
    # Nothing personal is left in a new export.
    again = admin.get(f"/api/v1/leads/{ada['lead_id']}/export").get_data(as_text=True).lower()
    for needle in PERSONAL:
        assert needle not in again, needle


def test_merged_leads_keep_both_conversations(env: Any) -> None:
    chat, admin = Chat(env), Admin(env)
    kept = visitor_lead(env, chat, "Ada", "ada@example.com", "", "Hello")
    other = visitor_lead(env, chat, "Ada L.", "ada.l@example.com", "", "Hello again")
    run_tasks(env)
    response = admin.post(f"/api/v1/leads/{kept['lead_id']}/merge", json={"other_id": other["lead_id"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    with in_tenant(env):
        linked = {c.id for c in ChatConversation.select().where(ChatConversation.lead == kept["lead_id"])}
        assert linked == {kept["conversation_id"], other["conversation_id"]}
        entry = AuditEntry.get((AuditEntry.entity == "lead") & (AuditEntry.action == "merge"))
        assert entry.changes["moved"][1]["chat_conversation"] == 1
    data = admin.get(f"/api/v1/leads/{kept['lead_id']}/export").json
    assert {c["id"] for c in data["plugins"]["chat"]["conversations"]} == {kept["conversation_id"], other["conversation_id"]}


def test_merged_contacts_keep_their_conversations(env: Any) -> None:
    chat, admin = Chat(env), Admin(env)
    kept = admin.post("/api/v1/contacts", json={"first_name": "Ada", "email": "ada@example.com"}).json
    other = admin.post("/api/v1/contacts", json={"first_name": "Augusta", "email": "augusta@example.com"}).json
    session = chat.start(name="Augusta", email="augusta@example.com")  # claims the existing contact
    cid = session["conversation"]["id"]
    assert admin.post(f"/api/v1/chat/conversations/{cid}/claim/confirm").status_code == 200  # an agent checked
    with in_tenant(env):
        assert ChatConversation.get_by_id(cid).contact_id == other["id"]
    assert admin.post(f"/api/v1/contacts/{kept['id']}/merge", json={"other_id": other["id"]}).status_code == 200
    with in_tenant(env):
        assert ChatConversation.get_by_id(session["conversation"]["id"]).contact_id == kept["id"]


def test_erase_in_a_tenant_with_chat_off_leaves_chat_alone(env: Any) -> None:
    """Turning the chat off keeps its data; its hooks are not asked for that tenant."""
    admin = Admin(env, "plain")
    lead = admin.post("/api/v1/leads", json={"name": "Ada Lovelace", "email": "ada@example.com"}).json
    with in_tenant(env, "plain"):  # a conversation from when the chat was on
        conversation = ChatConversation.create(visitor_hash="f" * 64, visitor_name="Ada Lovelace", visitor_email="ada@example.com", lead=lead["id"])
    data = admin.get(f"/api/v1/leads/{lead['id']}/export").json
    assert data["plugins"] == {} and data["errors"] == {}
    erased = admin.post(f"/api/v1/leads/{lead['id']}/erase")
    assert erased.status_code == 200 and not any(key.startswith("chat_") for key in erased.json["erased"])
    assert admin.get(f"/api/v1/leads/{lead['id']}").json["name"] == "Erased"
    with in_tenant(env, "plain"):
        assert ChatConversation.get_by_id(conversation.id).visitor_name == "Ada Lovelace"


@pytest.fixture
def app(env: Any) -> Any:
    """register_plugin works on this environment's app."""
    return env.app


class FailsLast:
    @hookimpl(trylast=True)  # asked after the chat, whose erase must then roll back too
    def crm_privacy_erase(self, tenant: Any, lead_ids: list[int]) -> dict[str, int]:
        raise RuntimeError("disk full")


def test_a_refused_erase_keeps_the_chat_and_its_files(env: Any, register_plugin: Any) -> None:
    chat, admin = Chat(env), Admin(env)
    ada = visitor_lead(env, chat, "Ada Lovelace", "ada@example.com", "+44 20 7946 0018", "Hello", upload=True)
    path = attachment_file(env, ada["conversation_id"])
    register_plugin(FailsLast(), name="fails_last")
    response = admin.post(f"/api/v1/leads/{ada['lead_id']}/erase")
    assert response.status_code == 503 and response.json["plugin"] == "fails_last"
    assert path.exists()
    with in_tenant(env):
        assert ChatConversation.get_by_id(ada["conversation_id"]).visitor_email == "ada@example.com"
        assert "Hello" in {m.content for m in ChatMessage.select().where(ChatMessage.conversation == ada["conversation_id"])}
        assert ChatAttachment.select().count() == 1
    assert chat.client.get("/api/v1/chat/public/messages", headers=chat.headers(ada["token"])).status_code == 200
