"""The chat setup page edits FAQ entries in place (issue 16), not only adds and deletes."""

from __future__ import annotations

from typing import Any

from crm_plugins.chat.models import ChatFaq

from .conftest import Chat, in_tenant


def test_an_faq_entry_is_edited_on_the_setup_page(chat: Chat, crm_env: Any) -> None:
    with in_tenant(crm_env):
        faq = ChatFaq.create(question="Opening hours?", answer="9 to 5")
        other = ChatFaq.create(question="Prices?", answer="Ask us")
    crm_env.login(chat.client, "acme", role="manager")
    csrf = crm_env.csrf(chat.client)
    page = chat.client.get("/app/chat/setup").get_data(as_text=True)
    assert f"/app/chat/setup?edit={faq.id}" in page
    form = chat.client.get(f"/app/chat/setup?edit={faq.id}").get_data(as_text=True)
    assert "Edit the entry" in form and ">9 to 5</textarea>" in form
    refused = chat.client.post(f"/app/chat/setup?edit={faq.id}", data={"csrf_token": csrf, "action": "edit", "question": "", "answer": "x"})
    assert refused.status_code == 422
    saved = chat.client.post(f"/app/chat/setup?edit={faq.id}", data={"csrf_token": csrf, "action": "edit", "question": "When are you open?", "answer": "9 to 6"})
    assert saved.status_code == 302
    with in_tenant(crm_env):
        assert [(f.question, f.answer) for f in ChatFaq.select().order_by(ChatFaq.id)] == [("When are you open?", "9 to 6"), (other.question, other.answer)]
    assert chat.client.get("/app/chat/setup?edit=999999").status_code == 404
