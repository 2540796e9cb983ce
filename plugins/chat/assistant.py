"""The bundled offline assistant: answers from the tenant's FAQ entries.

Matching is TF-IDF cosine similarity (scikit-learn) between the visitor's message and
each entry (its question counted twice, then its answer), with English stop words
removed and word uni- and bigrams. Below the tenant's ``assistant_confidence``, or when
the visitor asks for a person, it hands over to a human and offers to take contact
details. It implements ``crm_chat_assistant_reply`` with ``trylast=True`` so that any
other plugin's assistant (an LLM) answers first.
"""

from __future__ import annotations

import re
from typing import Any

from crm_plugins.chat.contrib import AssistantReply

HUMAN = re.compile(r"\b(human|person|agent|someone|somebody|representative|operator|real people|staff|talk to (a|an|some))\b", re.IGNORECASE)


def best_match(question: str, entries: list[Any]) -> tuple[Any, float]:
    """(entry, similarity 0..1) of the FAQ entry closest to ``question``; (None, 0.0)."""
    if not entries or not question.strip():
        return None, 0.0
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    docs = [f"{e.question} {e.question} {e.answer}" for e in entries]
    vectorizer = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform(docs + [question])
    except ValueError:  # only stop words everywhere: nothing to compare
        return None, 0.0
    scores = cosine_similarity(matrix[-1], matrix[:-1])[0]
    index = int(scores.argmax())
    return entries[index], float(scores[index])


def reply(tenant: Any, conversation: Any, message: Any, history: list[Any]) -> AssistantReply | None:
    from crm_plugins.chat import service
    from crm_plugins.chat.models import ChatFaq

    conf = service.settings(tenant)
    ask_details = "" if (conversation.visitor_email or conversation.visitor_phone) else " If you leave your email address or phone number here, we will get back to you."
    if HUMAN.search(message.content):
        return AssistantReply(f"I'll ask a colleague to take over; someone will reply here as soon as possible.{ask_details}", 1.0, handover=True)
    entry, score = best_match(message.content, list(ChatFaq.select().where(ChatFaq.active == True)))
    if entry is not None and score >= conf["assistant_confidence"]:
        return AssistantReply(entry.answer, round(score, 3))
    fallback = conf["offline_message"] if not service.is_open(tenant) else "I'm not sure I can answer that; a colleague will reply here as soon as possible."
    return AssistantReply(f"{fallback}{ask_details if fallback != conf['offline_message'] else ''}".strip(), round(score, 3), handover=True)
