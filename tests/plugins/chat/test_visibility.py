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


def test_agents_who_see_their_own_hear_only_their_part_of_the_live_inbox(crm_env: Any) -> None:
    """The inbox's live events carry conversations and messages: an agent under
    agents_see_own_only may not listen to the whole feed nor to a hidden conversation
    (1008), and hears on their narrow topics only what they may open."""
    from tests.core.test_realtime_ws import (
        POLICY_VIOLATION,
        WsServer,
        assert_quiet,
        recv_close_code,
        recv_event,
    )

    settings = {**chat_settings(), "core": {"agents_see_own_only": True}}
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["acme.test", "127.0.0.1"], plugins=["chat"], settings=settings)
    server = WsServer(crm_env.create_app())
    server.thread.start()
    try:
        admin_token = crm_env.token("acme", "admin")
        admin = {"Authorization": f"Bearer {admin_token}"}
        ann_id, ann = _agent_headers(crm_env, "ann@acme.test")
        bob_id, _ = _agent_headers(crm_env, "bob@acme.test")
        ann_token = ann["Authorization"].split()[1]
        c = crm_env.client("acme")
        bobs_lead = c.post("/api/v1/leads", json={"name": "Bob's customer", "owner_id": bob_id}, headers=admin).get_json()
        anns_lead = c.post("/api/v1/leads", json={"name": "Ann's customer", "owner_id": ann_id}, headers=admin).get_json()
        with in_tenant(crm_env):
            hidden = ChatConversation.create(visitor_hash="a" * 64, lead=bobs_lead["id"]).id
            own = ChatConversation.create(visitor_hash="b" * 64, lead=anns_lead["id"]).id
            unlinked = ChatConversation.create(visitor_hash="c" * 64).id

        for topics in ("chat:inbox", f"chat:inbox:owner:{bob_id}", f"chat:conversation:{hidden}"):
            assert recv_close_code(server.connect(f"topics={topics}", token=ann_token)) == POLICY_VIOLATION, topics
        ann_ws = server.subscribe(ann_token, f"topics=chat:inbox:open,chat:inbox:owner:{ann_id},chat:conversation:{own}")
        admin_ws = server.subscribe(admin_token, "topics=chat:inbox")

        heard = []
        for conversation in (hidden, own, unlinked):
            assert c.post(f"/api/v1/chat/conversations/{conversation}/messages", json={"content": f"to {conversation}"}, headers=admin).status_code == 201
            heard.append(recv_event(admin_ws))
        assert [e["data"]["conversation"]["id"] for e in heard if e["data"].get("event") == "message"] == [hidden, own, unlinked]
        got = []
        for _ in range(3):  # the inbox event of `own` and `unlinked`, and `own`'s message on its topic
            event = recv_event(ann_ws)
            got.append((event["topic"], event["data"].get("message", {}).get("content")))
        assert sorted(got) == sorted([(f"chat:inbox:owner:{ann_id}", f"to {own}"), (f"chat:conversation:{own}", f"to {own}"), ("chat:inbox:open", f"to {unlinked}")])
        assert_quiet(ann_ws)
    finally:
        server.stop()
