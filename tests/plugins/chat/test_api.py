"""The chat's public (visitor) and agent APIs on a real database."""

from __future__ import annotations

from typing import Any

from crm_plugins.chat.models import ChatConversation, ChatMessage
from crmcore.entities.models import Activity, Lead

from .conftest import ORIGIN, Chat, in_tenant


def test_visitor_session_send_dedupe_and_history(chat: Chat) -> None:
    session = chat.start(name="Ada", page_url="https://shop.example/pricing")
    token = session["token"]
    assert session["messages"][0]["sender"] == "system"  # the greeting

    first = chat.say(token, "Hello there", client_id="c-1")
    assert first.status_code == 201
    again = chat.say(token, "Hello there", client_id="c-1")  # a resend after a drop
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]

    history = chat.client.get(f"/api/v1/chat/public/messages?after={session['messages'][0]['id']}", headers=chat.headers(token)).get_json()
    assert [m["content"] for m in history["messages"]] == ["Hello there"]
    assert history["status"] == "open"

    resumed = chat.client.post("/api/v1/chat/public/session", json={}, headers=chat.headers(token))
    assert resumed.status_code == 200 and resumed.get_json()["conversation"]["id"] == session["conversation"]["id"]
    assert "token" not in resumed.get_json()
    with in_tenant(chat.env):
        assert ChatMessage.select().where(ChatMessage.sender == "visitor").count() == 1


def test_public_api_refuses_bad_keys_tokens_origins_and_input(chat: Chat) -> None:
    token = chat.start()["token"]
    c = chat.client
    assert c.post("/api/v1/chat/public/session", json={}, headers={"X-Chat-Key": "nope", "Origin": ORIGIN}).status_code == 401
    assert c.post("/api/v1/chat/public/messages", json={"content": "x"}, headers=chat.headers()).status_code == 401
    assert c.post("/api/v1/chat/public/messages", json={"content": "x"}, headers=chat.headers("forged")).status_code == 401
    evil = c.post("/api/v1/chat/public/messages", json={"content": "x"}, headers=chat.headers(token, origin="https://evil.example"))
    assert evil.status_code == 403 and "Access-Control-Allow-Origin" not in evil.headers
    ok = c.post("/api/v1/chat/public/messages", json={"content": "x"}, headers=chat.headers(token))
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    preflight = c.options("/api/v1/chat/public/messages", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and "X-Chat-Token" in preflight.headers["Access-Control-Allow-Headers"]

    empty = c.post("/api/v1/chat/public/messages", json={"content": "   "}, headers=chat.headers(token))
    assert empty.status_code == 422 and "content" in empty.get_json()["errors"]["json"]
    long = c.post("/api/v1/chat/public/messages", json={"content": "x" * 2001}, headers=chat.headers(token))
    assert long.status_code == 422
    wrong = c.post("/api/v1/chat/public/messages", json={"content": 5, "client_id": ""}, headers=chat.headers(token))
    assert wrong.status_code == 422 and set(wrong.get_json()["errors"]["json"]) == {"content", "client_id"}
    assert c.post("/api/v1/chat/public/messages", data="nope", headers=chat.headers(token)).status_code == 422
    assert c.get("/api/v1/chat/public/messages?after=x", headers=chat.headers(token)).status_code == 422


def test_visitor_reads_only_own_conversation(chat: Chat) -> None:
    a, b = chat.start(name="A"), chat.start(name="B")
    chat.say(a["token"], "secret of A")
    seen = chat.client.get("/api/v1/chat/public/messages", headers=chat.headers(b["token"])).get_json()
    assert all(m["conversation_id"] == b["conversation"]["id"] for m in seen["messages"])
    assert "secret of A" not in str(seen)


def test_prechat_required_fields_and_lead_capture(crm_env: Any, captured_signals: Any) -> None:
    from .conftest import chat_settings

    crm_env.write_tenant("acme", plugins=["chat"], settings=chat_settings(prechat_fields=["name", "email"], prechat_required=["email"]))
    crm_env.create_app()
    chat = Chat(crm_env)
    bad = chat.client.post("/api/v1/chat/public/session", json={"name": "Ada"}, headers=chat.headers())
    assert bad.status_code == 422 and bad.get_json()["errors"]["json"] == {"email": ["Required."]}
    bad = chat.client.post("/api/v1/chat/public/session", json={"email": "not-an-email"}, headers=chat.headers())
    assert bad.status_code == 422 and "email" in bad.get_json()["errors"]["json"]

    with captured_signals("chat_conversation_started", "chat_lead_captured", "entity_created") as sent:
        session = chat.start(name="Ada Lovelace", email="Ada@Example.com")
    names = [n for n, _, _ in sent]
    assert "chat_conversation_started" in names and "chat_lead_captured" in names
    captured = next(d for n, _, d in sent if n == "chat_lead_captured")
    assert captured["created"] is True and captured["lead"].source == "chat"
    assert any(n == "entity_created" and d["entity"] == "lead" for n, _, d in sent)  # the lead board hears of it
    with in_tenant(crm_env):
        lead = Lead.get(Lead.email == "Ada@example.com")
        assert lead.name == "Ada Lovelace" and lead.source == "chat"
        assert ChatConversation.get_by_id(session["conversation"]["id"]).lead_id == lead.id
        assert Activity.select().where((Activity.lead == lead.id) & (Activity.kind == "chat")).count() == 1


def test_email_typed_in_message_of_existing_lead_is_only_a_claim_until_an_agent_confirms(chat: Chat, crm_env: Any, captured_signals: Any) -> None:
    admin = {"Authorization": f"Bearer {crm_env.token('acme', 'admin')}"}
    existing = chat.client.post("/api/v1/leads", json={"name": "Grace Hopper", "email": "grace@navy.example"}, headers=admin).get_json()
    token = chat.start()["token"]
    with captured_signals("chat_message_received", "chat_lead_captured") as sent:
        assert chat.say(token, "no email here, call me maybe").status_code == 201
        assert chat.say(token, "Sure, it is grace@navy.example or +1 415 555 2671.").status_code == 201
    received = [d for n, _, d in sent if n == "chat_message_received"]
    assert received[0]["lead"] is None and received[1]["lead"] is None  # anyone can type an address
    assert not [d for n, _, d in sent if n == "chat_lead_captured"]
    with in_tenant(crm_env):
        assert Lead.select().count() == 1
        conv = ChatConversation.get()
        assert conv.visitor_email == "grace@navy.example" and conv.visitor_phone == "+14155552671"
        assert conv.lead_id is None and conv.claimed_lead_id == existing["id"]
        assert not Activity.select().where(Activity.lead == existing["id"]).exists()  # nothing on her timeline
    shown = chat.client.get(f"/api/v1/chat/conversations/{conv.id}", headers=admin).get_json()
    assert shown["lead_id"] is None and shown["claimed_lead_id"] == existing["id"]

    with captured_signals("chat_lead_captured") as sent:
        confirmed = chat.client.post(f"/api/v1/chat/conversations/{conv.id}/claim/confirm", headers=admin)
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    assert confirmed.get_json()["lead_id"] == existing["id"] and confirmed.get_json()["claimed_lead_id"] is None
    assert [d["created"] for n, _, d in sent] == [False]
    with in_tenant(crm_env):
        assert Activity.select().where((Activity.lead == existing["id"]) & (Activity.kind == "chat")).count() == 1
    # Nothing left to confirm.
    assert chat.client.post(f"/api/v1/chat/conversations/{conv.id}/claim/confirm", headers=admin).status_code == 404


def test_prechat_email_of_existing_lead_is_a_claim_an_agent_can_dismiss(chat: Chat, crm_env: Any) -> None:
    admin = {"Authorization": f"Bearer {crm_env.token('acme', 'admin')}"}
    viewer = {"Authorization": f"Bearer {crm_env.token('acme', 'viewer')}"}
    existing = chat.client.post("/api/v1/leads", json={"name": "Grace Hopper", "email": "grace@navy.example"}, headers=admin).get_json()
    session = chat.start(name="Mallory", email="grace@navy.example")
    cid = session["conversation"]["id"]
    shown = chat.client.get(f"/api/v1/chat/conversations/{cid}", headers=admin).get_json()
    assert shown["lead_id"] is None and shown["claimed_lead_id"] == existing["id"]
    assert chat.client.post(f"/api/v1/chat/conversations/{cid}/claim/confirm", headers=viewer).status_code == 403
    dismissed = chat.client.post(f"/api/v1/chat/conversations/{cid}/claim/dismiss", headers=admin)
    assert dismissed.status_code == 200 and dismissed.get_json()["claimed_lead_id"] is None and dismissed.get_json()["lead_id"] is None
    chat.say(session["token"], "I am Grace, honest: grace@navy.example")
    with in_tenant(crm_env):
        assert ChatConversation.get_by_id(cid).lead_id is None
        assert not Activity.select().where(Activity.lead == existing["id"]).exists()
        assert Lead.select().count() == 1


def test_agent_api_list_reply_assign_status_and_roles(chat: Chat, crm_env: Any) -> None:
    session = chat.start(name="Ada")
    token = session["token"]
    chat.say(token, "Help please")
    cid = session["conversation"]["id"]
    agent = {"Authorization": f"Bearer {crm_env.token('acme', 'agent')}"}
    viewer = {"Authorization": f"Bearer {crm_env.token('acme', 'viewer')}"}
    c = chat.client

    listed = c.get("/api/v1/chat/conversations?view=unassigned", headers=agent).get_json()
    assert [x["id"] for x in listed] == [cid] and listed[0]["unread"] == 1
    assert c.get("/api/v1/chat/conversations?status=bogus", headers=agent).status_code == 422
    assert c.get("/api/v1/chat/conversations").status_code == 401
    assert c.post(f"/api/v1/chat/conversations/{cid}/messages", json={"content": "hi"}, headers=viewer).status_code == 403
    assert c.post(f"/api/v1/chat/conversations/{cid}/messages", json={}, headers=agent).status_code == 422
    assert c.get("/api/v1/chat/conversations/999999/messages", headers=agent).status_code == 404

    reply = c.post(f"/api/v1/chat/conversations/{cid}/messages", json={"content": "How can I help?"}, headers=agent)
    assert reply.status_code == 201 and reply.get_json()["sender"] == "agent"
    seen = c.get("/api/v1/chat/public/messages", headers=chat.headers(token)).get_json()["messages"]
    assert seen[-1]["content"] == "How can I help?"

    assert c.post(f"/api/v1/chat/conversations/{cid}/read", json={}, headers=agent).get_json()["unread"] == 0
    assert c.put(f"/api/v1/chat/conversations/{cid}/status", json={"status": "closed"}, headers=agent).status_code == 422
    assert c.put(f"/api/v1/chat/conversations/{cid}/status", json={"status": "resolved"}, headers=agent).get_json()["status"] == "resolved"
    assert c.put(f"/api/v1/chat/conversations/{cid}/assign", json={"assignee_id": 424242}, headers=agent).status_code == 422
    assert c.put(f"/api/v1/chat/conversations/{cid}/assign", json={"assignee_id": None}, headers=agent).get_json()["assignee_id"] is None
    # the visitor writes again: the resolved conversation opens again
    chat.say(token, "One more thing")
    assert c.get(f"/api/v1/chat/conversations/{cid}", headers=agent).get_json()["status"] == "open"


def test_history_by_lead_and_other_tenant_ids_are_404(crm_env: Any) -> None:
    from .conftest import chat_settings

    crm_env.write_tenant("acme", plugins=["chat"], settings=chat_settings())
    crm_env.write_tenant("beta", plugins=["chat"], settings=chat_settings())
    crm_env.create_app()
    acme, beta = Chat(crm_env, "acme"), Chat(crm_env, "beta")
    assert acme.key != beta.key
    session = acme.start(email="ada@example.com")
    admin = {"Authorization": f"Bearer {crm_env.token('acme', 'admin')}"}
    lead_id = acme.client.get("/api/v1/chat/conversations", headers=admin).get_json()[0]["lead_id"]
    by_lead = acme.client.get(f"/api/v1/chat/leads/{lead_id}/conversations", headers=admin).get_json()
    assert [x["id"] for x in by_lead] == [session["conversation"]["id"]]

    beta_admin = {"Authorization": f"Bearer {crm_env.token('beta', 'admin')}"}
    cid = session["conversation"]["id"]
    assert beta.client.get(f"/api/v1/chat/conversations/{cid}", headers=beta_admin).status_code == 404
    assert beta.client.get(f"/api/v1/chat/leads/{lead_id}/conversations", headers=beta_admin).status_code == 404
    # acme's visitor token and key mean nothing to beta
    assert beta.client.get("/api/v1/chat/public/messages", headers={**beta.headers(), "X-Chat-Token": session["token"]}).status_code == 401
    assert beta.client.post("/api/v1/chat/public/session", json={}, headers=acme.headers()).status_code == 401


def test_disabled_tenant_gets_404_and_no_nav(crm_env: Any) -> None:
    crm_env.write_tenant("acme", plugins=["chat"])
    crm_env.write_tenant("beta")
    crm_env.create_app()
    beta = crm_env.client("beta")
    token = {"Authorization": f"Bearer {crm_env.token('beta', 'admin')}"}
    assert beta.get("/api/v1/chat/conversations", headers=token).status_code == 404
    assert beta.post("/api/v1/chat/public/session", json={}).status_code == 404
    assert beta.get("/chat/widget.js").status_code == 404
    crm_env.login(beta, "beta")
    assert beta.get("/app/chat/").status_code == 404
    assert "Inbox" not in beta.get("/app/").get_data(as_text=True)
    acme = crm_env.client("acme")
    assert acme.get("/chat/widget.js").status_code == 200
    crm_env.login(acme, "acme")
    assert ">Inbox<" in acme.get("/app/").get_data(as_text=True)


def test_rate_limits_answer_429_with_retry_after(crm_env: Any) -> None:
    from .conftest import chat_settings

    crm_env.write_tenant("acme", plugins=["chat"], settings=chat_settings(visitor_messages_per_minute=3, sessions_per_ip_per_hour=2, assistant_enabled=False))
    crm_env.create_app()
    chat = Chat(crm_env)
    token = chat.start()["token"]
    codes = [chat.say(token, f"m{i}").status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    limited = chat.say(token, "again")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["Access-Control-Allow-Origin"] == ORIGIN  # the widget can read it
    chat.start()
    third = chat.client.post("/api/v1/chat/public/session", json={}, headers=chat.headers())
    assert third.status_code == 429 and int(third.headers["Retry-After"]) > 0
    with in_tenant(chat.env):
        assert ChatMessage.select().where(ChatMessage.sender == "visitor").count() == 3


def test_scoring_factor_counts_conversations_in_one_query(chat: Chat, crm_env: Any) -> None:
    from crm_plugins.chat.hooks import chat_engagement, crm_scoring_factors

    a = chat.start(email="a@example.com")
    chat.say(a["token"], "one")
    chat.say(a["token"], "two")
    chat.start(email="b@example.com")
    with in_tenant(crm_env) as tenant:
        leads = {lead.email: lead.id for lead in Lead.select()}
        (factor,) = crm_scoring_factors(tenant)
        assert factor.name == "chat:conversations" and factor.component == "engagement"
        from playhouse.test_utils import count_queries

        with count_queries() as counter:
            result = chat_engagement(tenant, [*leads.values(), 999999])
        assert counter.count == 1
    assert result == {leads["a@example.com"]: (10.0, "1 chat conversation, 2 messages"), leads["b@example.com"]: (8.0, "1 chat conversation, 0 messages")}


def test_demo_data_is_idempotent(chat: Chat, crm_env: Any) -> None:
    from crm_plugins.chat.demo import load
    from crm_plugins.chat.models import ChatFaq

    with in_tenant(crm_env) as tenant:  # as `crm run --demo` calls it: an app context, no request
        load(tenant)
        counts = (ChatFaq.select().count(), ChatConversation.select().count(), ChatMessage.select().count())
        load(tenant)
        assert (ChatFaq.select().count(), ChatConversation.select().count(), ChatMessage.select().count()) == counts
        assert counts[1] == 2 and Lead.get(Lead.email == "maya.lopez@demo.example").source == "chat"


def test_inbox_page_lists_and_escapes(chat: Chat, crm_env: Any) -> None:
    token = chat.start(name="<b>Bold</b>")["token"]
    chat.say(token, "<script>alert(1)</script>")
    crm_env.login(chat.client, "acme", role="agent")
    page = chat.client.get("/app/chat/?view=unassigned").get_data(as_text=True)
    assert "&lt;b&gt;Bold&lt;/b&gt;" in page and "<b>Bold</b>" not in page
    cid = chat.client.get("/api/v1/chat/conversations").get_json()[0]["id"]
    thread = chat.client.get(f"/app/chat/?c={cid}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in thread
    assert chat.client.get("/app/chat/?c=999999").status_code == 404
    assert chat.client.get("/app/chat/setup").status_code == 403  # agents do not manage the FAQ


def test_round_robin_assigns_online_agents_within_capacity(crm_env: Any) -> None:
    from .conftest import chat_settings

    crm_env.write_tenant("acme", plugins=["chat"], settings=chat_settings(agent_capacity=1, assistant_enabled=False))
    crm_env.create_app()
    chat = Chat(crm_env)
    with in_tenant(crm_env) as tenant:
        from crmcore import auth

        ann = auth.create_user(tenant, "ann@acme.test", "pw-123456", role="agent")
        bob = auth.create_user(tenant, "bob@acme.test", "pw-123456", role="agent")
        away = auth.create_user(tenant, "cy@acme.test", "pw-123456", role="agent")
    headers = {}
    for user, status in ((ann, "online"), (bob, "online"), (away, "away")):
        with in_tenant(crm_env) as tenant:
            from crmcore import auth

            _, secret = auth.create_token(tenant, "agent", name="t", user=user)
        headers[user.id] = {"Authorization": f"Bearer {secret}"}
        assert chat.client.put("/api/v1/chat/presence", json={"status": status}, headers=headers[user.id]).status_code == 200
    assert chat.client.put("/api/v1/chat/presence", json={"status": "busy"}, headers=headers[ann.id]).status_code == 422
    assert chat.client.get("/api/v1/chat/public/config", headers=chat.headers()).get_json()["online"] is True

    first, second, third = (chat.start()["conversation"]["id"] for _ in range(3))
    listed = {c["id"]: c["assignee_id"] for c in chat.client.get("/api/v1/chat/conversations", headers=headers[ann.id]).get_json()}
    assert {listed[first], listed[second]} == {ann.id, bob.id}  # one each, never the away agent
    assert listed[third] is None  # both at capacity: it waits in the queue
    mine = chat.client.get("/api/v1/chat/conversations?view=mine", headers=headers[ann.id]).get_json()
    assert [c["assignee_id"] for c in mine] == [ann.id]
    queue = chat.client.get("/api/v1/chat/conversations?view=unassigned", headers=headers[ann.id]).get_json()
    assert [c["id"] for c in queue] == [third]


def test_lead_page_shows_chat_panel(chat: Chat, crm_env: Any) -> None:
    chat.start(name="Ada", email="ada@example.com")
    crm_env.login(chat.client, "acme", role="agent")
    with in_tenant(crm_env):
        lead = Lead.get(Lead.email == "ada@example.com")
        cid = ChatConversation.get().id
    page = chat.client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert f"/app/chat/?c={cid}" in page and "Chat #" in page


def test_expiring_rate_counters_keeps_the_current_hour(chat: Chat, crm_env: Any) -> None:
    import time

    from crm_plugins.chat import service
    from crm_plugins.chat.models import ChatRate

    with in_tenant(crm_env):
        service.hit("t:session:1.2.3.4", 5, 3600)
        service.hit("t:ip:1.2.3.4", 5, 60)
        ChatRate.insert(key="t:ip:old", window=int(time.time()) - 3 * 3600, count=9).execute()
        assert service.expire_rates() == 1  # only the long-gone window
        assert {r.key for r in ChatRate.select()} == {"t:session:1.2.3.4", "t:ip:1.2.3.4"}
