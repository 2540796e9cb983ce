"""The chat API under ``[settings.core] agents_see_own_only``: an agent sees the
conversations of leads and contacts they may see (own or nobody's), and a hidden one
answers exactly as a missing one does (404)."""

from __future__ import annotations

from typing import Any

from crm_plugins.chat.models import ChatConversation
from crmcore import auth, db

from .conftest import Chat, chat_settings, in_tenant


def _agent_headers(crm_env: Any, email: str) -> tuple[int, dict[str, str]]:
    with crm_env.app.app_context(), db.database.connection_context():
        tenant = crm_env.tenant("acme")
        user = auth.create_user(tenant, email, "secret-pw", role="agent")
        secret = auth.create_token(tenant, "agent", name=email, user=user)[1]
    return user.id, {"Authorization": f"Bearer {secret}"}


def test_agents_see_only_conversations_of_records_they_may_see(crm_env: Any) -> None:
    settings = {**chat_settings(), "core": {"agents_see_own_only": True}}
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["chat"], settings=settings)
    crm_env.create_app()
    chat = Chat(crm_env)
    admin = {"Authorization": f"Bearer {crm_env.token('acme', 'admin')}"}
    _, ann = _agent_headers(crm_env, "ann@acme.test")
    bob_id, bob = _agent_headers(crm_env, "bob@acme.test")
    c = chat.client

    bobs_lead = c.post("/api/v1/leads", json={"name": "Bob's customer", "owner_id": bob_id}, headers=admin).get_json()
    bobs_contact = c.post("/api/v1/contacts", json={"first_name": "Bob's contact", "owner_id": bob_id}, headers=admin).get_json()
    open_lead = c.post("/api/v1/leads", json={"name": "Nobody's lead"}, headers=admin).get_json()
    with in_tenant(crm_env):
        hidden = ChatConversation.create(visitor_hash="a" * 64, lead=bobs_lead["id"]).id
        hidden_by_contact = ChatConversation.create(visitor_hash="b" * 64, contact=bobs_contact["id"]).id
        shared = ChatConversation.create(visitor_hash="c" * 64, lead=open_lead["id"]).id
        unlinked = ChatConversation.create(visitor_hash="d" * 64).id

    listed = {x["id"] for x in c.get("/api/v1/chat/conversations", headers=ann).get_json()}
    assert listed == {shared, unlinked}
    assert {x["id"] for x in c.get("/api/v1/chat/conversations", headers=bob).get_json()} == {hidden, hidden_by_contact, shared, unlinked}
    assert len(c.get("/api/v1/chat/conversations", headers=admin).get_json()) == 4
    assert c.get(f"/api/v1/chat/conversations?lead_id={bobs_lead['id']}", headers=ann).get_json() == []

    missing = 999_999
    for path in ("", "/messages"):
        for cid in (hidden, hidden_by_contact):
            answer = c.get(f"/api/v1/chat/conversations/{cid}{path}", headers=ann)
            ghost = c.get(f"/api/v1/chat/conversations/{missing}{path}", headers=ann)
            assert answer.status_code == ghost.status_code == 404
            assert answer.get_json()["message"].replace(str(cid), "N") == ghost.get_json()["message"].replace(str(missing), "N")
    for verb, path, body in (("post", "/messages", {"content": "hi"}), ("put", "/status", {"status": "resolved"}), ("post", "/read", {}), ("post", "/typing", None)):
        assert getattr(c, verb)(f"/api/v1/chat/conversations/{hidden}{path}", json=body, headers=ann).status_code == 404
    hidden_lead = c.get(f"/api/v1/chat/leads/{bobs_lead['id']}/conversations", headers=ann)
    missing_lead = c.get(f"/api/v1/chat/leads/{missing}/conversations", headers=ann)
    assert hidden_lead.status_code == missing_lead.status_code == 404
    assert hidden_lead.get_json()["message"].replace(str(bobs_lead["id"]), "N") == missing_lead.get_json()["message"].replace(str(missing), "N")
    assert c.get(f"/api/v1/chat/conversations/{hidden}", headers=bob).status_code == 200
    assert [x["id"] for x in c.get(f"/api/v1/chat/leads/{bobs_lead['id']}/conversations", headers=bob).get_json()] == [hidden]
