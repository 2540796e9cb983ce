"""Demo data for ``crm run --demo``: FAQ entries and two conversations (idempotent)."""

from __future__ import annotations

from typing import Any

from crm_plugins.chat.models import ChatConversation, ChatFaq, ChatMessage
from crmcore.sdk import utcnow

FAQS = [
    ("What are your opening hours?", "We are open Monday to Friday, 9:00 to 17:00 (UTC)."),
    ("How much does it cost?", "Plans start at 29 EUR per user and month; every plan has a 30-day free trial."),
    ("Do you offer a free trial?", "Yes: every plan can be tried free for 30 days, no credit card needed."),
    ("How do I reset my password?", "Use “Forgot password” on the sign-in page; the link in the email is valid for one hour."),
]


def load(tenant: Any) -> None:
    from crm_plugins.chat import service

    if not ChatFaq.select().exists():
        for question, answer in FAQS:
            ChatFaq.create(question=question, answer=answer)
    if ChatConversation.select().where(ChatConversation.page_url.startswith("https://demo.example/")).exists():
        return
    first, _ = service.start_conversation(tenant, name="Maya Lopez", page_url="https://demo.example/pricing")
    service.post_message(tenant, first, sender="visitor", content="Hi, do you have a plan for a team of 12?", client_id="demo-1")
    service.post_message(tenant, first, sender="visitor", content="You can reach me at maya.lopez@demo.example", client_id="demo-2")
    second, _ = service.start_conversation(tenant, name="", page_url="https://demo.example/")
    service.post_message(tenant, second, sender="visitor", content="What are your opening hours?", client_id="demo-3")
    ChatMessage.update(read_at=utcnow()).where((ChatMessage.conversation == second.id) & (ChatMessage.sender != "visitor")).execute()
