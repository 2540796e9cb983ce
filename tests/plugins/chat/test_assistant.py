"""The assistant: the declared hook, the FAQ matcher, the durable delayed task."""

from __future__ import annotations

from typing import Any

from crm_plugins.chat.contrib import AssistantReply
from crm_plugins.chat.models import ChatConversation, ChatFaq, ChatMessage
from crmcore import hookimpl

from .conftest import Chat, chat_settings, in_tenant, run_tasks


def _faqs(crm_env: Any) -> None:
    with in_tenant(crm_env):
        ChatFaq.create(question="What are your opening hours?", answer="Monday to Friday, 9 to 5.")
        ChatFaq.create(question="How much does the pro plan cost?", answer="The pro plan costs 29 EUR per user and month.")
        ChatFaq.create(question="Do you ship to Canada?", answer="Yes, we ship worldwide.", active=False)


def _messages(crm_env: Any) -> list[tuple[str, str]]:
    with in_tenant(crm_env):
        return [(m.sender, m.content) for m in ChatMessage.select().order_by(ChatMessage.id)]


def test_assistant_answers_from_faq_after_the_delay(chat: Chat, crm_env: Any) -> None:
    _faqs(crm_env)
    token = chat.start()["token"]
    chat.say(token, "what does the pro plan cost per user?")
    assert run_tasks(crm_env) == 1
    sender, text = _messages(crm_env)[-1]
    assert sender == "assistant" and "29 EUR" in text
    with in_tenant(crm_env):
        answer = ChatMessage.select().where(ChatMessage.sender == "assistant").get()
        assert 0.3 <= answer.confidence <= 1
    # the visitor sees it as the assistant's message
    seen = chat.client.get("/api/v1/chat/public/messages", headers=chat.headers(token)).get_json()["messages"]
    assert seen[-1]["sender"] == "assistant"


def test_assistant_hands_over_when_unsure_or_asked_and_then_stays_quiet(chat: Chat, crm_env: Any) -> None:
    _faqs(crm_env)
    token = chat.start()["token"]
    chat.say(token, "Do you ship to Canada?")  # only an inactive entry matches
    run_tasks(crm_env)
    sender, text = _messages(crm_env)[-1]
    assert sender == "assistant" and "email" in text  # offers to take contact details
    with in_tenant(crm_env):
        assert ChatConversation.get().handed_over is True
    chat.say(token, "what are your opening hours?")
    assert run_tasks(crm_env) == 0  # handed over: no task at all
    assert _messages(crm_env)[-1][0] == "visitor"

    other = chat.start()["token"]
    chat.say(other, "Can I talk to a human please")
    run_tasks(crm_env)
    with in_tenant(crm_env):
        conv = ChatConversation.select().order_by(ChatConversation.id.desc()).get()
        assert conv.handed_over and ChatMessage.select().where((ChatMessage.conversation == conv.id) & (ChatMessage.sender == "assistant")).count() == 1


def test_no_assistant_when_an_agent_replied_first(crm_env: Any) -> None:
    crm_env.write_tenant("acme", plugins=["chat"], settings=chat_settings(assistant_delay_seconds=3600))
    crm_env.create_app()
    chat = Chat(crm_env)
    _faqs(crm_env)
    session = chat.start()
    chat.say(session["token"], "what are your opening hours?")
    with in_tenant(crm_env):
        from crmcore.models import Task

        task = Task.select().where(Task.kind == "chat.assistant").get()
        assert (task.next_run_at - task.created_at).total_seconds() > 3500  # durable, run later
    agent = {"Authorization": f"Bearer {crm_env.token('acme', 'agent')}"}
    chat.client.post(f"/api/v1/chat/conversations/{session['conversation']['id']}/messages", json={"content": "9 to 5!"}, headers=agent)
    with in_tenant(crm_env):
        Task.update(next_run_at=Task.created_at).execute()  # the delay is over
    assert run_tasks(crm_env) == 1
    assert [s for s, _ in _messages(crm_env)][-2:] == ["visitor", "agent"]


def test_outside_opening_hours_the_assistant_answers_at_once(crm_env: Any) -> None:
    crm_env.write_tenant("acme", plugins=["chat"], settings=chat_settings(assistant_delay_seconds=3600, open_days=[]))
    crm_env.create_app()
    chat = Chat(crm_env)
    assert chat.client.get("/api/v1/chat/public/config", headers=chat.headers()).get_json()["online"] is False
    token = chat.start()["token"]
    chat.say(token, "anyone there?")
    assert run_tasks(crm_env) == 1
    assert _messages(crm_env)[-1] == ("assistant", "We are offline right now. Leave your email and we will get back to you.")


def test_hook_crm_chat_assistant_reply(chat: Chat, crm_env: Any, register_plugin: Any) -> None:
    seen: list[Any] = []

    class Llm:
        @hookimpl
        def crm_chat_assistant_reply(self, tenant: Any, conversation: Any, message: Any, history: list[Any]) -> AssistantReply:
            seen.append((tenant.slug, conversation.id, message.content, [m.sender for m in history]))
            return AssistantReply(text="<b>LLM</b> says hi", confidence=0.9)

    _faqs(crm_env)
    register_plugin(Llm(), name="llm")
    session = chat.start()
    chat.say(session["token"], "what are your opening hours?")
    run_tasks(crm_env)
    assert seen == [("acme", session["conversation"]["id"], "what are your opening hours?", ["system", "visitor"])]
    assert _messages(crm_env)[-1] == ("assistant", "<b>LLM</b> says hi")  # stored as text, the FAQ default did not run


def test_faq_api_and_roles(chat: Chat, crm_env: Any) -> None:
    admin = {"Authorization": f"Bearer {crm_env.token('acme', 'admin')}"}
    agent = {"Authorization": f"Bearer {crm_env.token('acme', 'agent')}"}
    c = chat.client
    assert c.post("/api/v1/chat/faq", json={"question": "Q", "answer": "A"}, headers=agent).status_code == 403
    assert c.post("/api/v1/chat/faq", json={"question": ""}, headers=admin).status_code == 422
    made = c.post("/api/v1/chat/faq", json={"question": "Q?", "answer": "A."}, headers=admin).get_json()
    assert c.patch(f"/api/v1/chat/faq/{made['id']}", json={"answer": "B."}, headers=admin).get_json() == {"id": made["id"], "question": "Q?", "answer": "B.", "active": True}
    assert [f["answer"] for f in c.get("/api/v1/chat/faq", headers=agent).get_json()] == ["B."]
    assert c.delete(f"/api/v1/chat/faq/{made['id']}", headers=admin).status_code == 204
    assert c.delete(f"/api/v1/chat/faq/{made['id']}", headers=admin).status_code == 404


def test_assistant_task_is_cancelled_when_the_tenant_turns_chat_off(crm_env: Any) -> None:
    crm_env.write_tenant("acme", plugins=["chat"], settings=chat_settings())
    crm_env.create_app()
    chat = Chat(crm_env)
    _faqs(crm_env)
    chat.say(chat.start()["token"], "what are your opening hours?")
    crm_env.write_tenant("acme", plugins=[], settings=chat_settings())
    crm_env.reload()
    run_tasks(crm_env)
    with in_tenant(crm_env):
        from crmcore.models import Task

        assert Task.get(Task.kind == "chat.assistant").status == "cancelled"
        assert not ChatMessage.select().where(ChatMessage.sender == "assistant").exists()


def test_an_assistant_returning_none_leaves_the_answer_to_the_next(chat: Chat, crm_env: Any, register_plugin: Any) -> None:
    class Quiet:
        @hookimpl(tryfirst=True)
        def crm_chat_assistant_reply(self, tenant: Any, conversation: Any, message: Any, history: list[Any]) -> None:
            return None  # pluggy then asks the next one: the FAQ default

    register_plugin(Quiet(), name="quiet")
    chat.say(chat.start()["token"], "hello?")
    run_tasks(crm_env)
    # None from one implementation falls through to the bundled FAQ assistant (no FAQ: hand over)
    with in_tenant(crm_env):
        answer = ChatMessage.select().where(ChatMessage.sender == "assistant").get()
        assert ChatConversation.get().handed_over is True
    assert answer.content
