"""Text generation: the hook, the offline extractive summary, the OpenAI-compatible
adapter (llama.cpp's server, vLLM, Ollama, OpenAI itself) and redaction.

Generation runs in the worker (task ``insights.generate``): an HTTP call to a model is
slow and fallible. The result is stored in ``insights_generated_text``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import requests

from crm_plugins.insights.contrib import GeneratedText
from crm_plugins.insights.models import GeneratedTextRecord
from crm_plugins.insights.sentiment import ENGLISH_STOPWORDS, score_text
from crmcore import sdk
from crmcore.sdk import Activity, Note, payload_of

TASK_KIND = "insights.generate"
HOOK = "crm_insights_generate_text"
INSTRUCTIONS = {
    "summary": "Summarise this customer's history for a sales rep in at most three sentences: where things stand, open concerns, the next step.",
    "reply": "Draft a short, friendly reply from the sales rep to the customer's latest message (the first one below): answer its points "
             "and propose a next step. Plain text, no subject line, no placeholders.",
}
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w])\+?\d[\d ()./-]{6,}\d(?![\w])")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


def redact(text: str) -> str:
    """Email addresses and phone numbers replaced before text leaves the instance."""
    return PHONE.sub("[phone]", EMAIL.sub("[email]", text))


def extractive_summary(text: str, sentences: int = 3) -> str:
    """The ``sentences`` most representative sentences, in their order: each scored by the
    frequency of its content words in the whole text (a classic offline summariser)."""
    parts = [p.strip() for p in _SENTENCE.split(text) if p and len(p.strip()) > 3]
    if len(parts) <= sentences:
        return " ".join(parts)
    counts = Counter(w for w in _WORD.findall(text.lower()) if w not in ENGLISH_STOPWORDS)
    def weight(sentence: str) -> float:
        words = [w for w in _WORD.findall(sentence.lower()) if w not in ENGLISH_STOPWORDS]
        return sum(counts[w] for w in words) / (len(words) ** 0.5) if words else 0.0
    best = sorted(range(len(parts)), key=lambda i: (-weight(parts[i]), i))[:sentences]
    return " ".join(parts[i] for i in sorted(best))


def openai_compatible(settings: Any, instruction: str, text: str) -> GeneratedText:
    """POST ``<llm_base_url>/chat/completions`` (the base URL ends in ``/v1``)."""
    url = settings["llm_base_url"].rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    if settings["llm_api_key"]:
        headers["Authorization"] = f"Bearer {settings['llm_api_key']}"
    body = {"model": settings["llm_model"], "temperature": 0.2, "messages": [
        {"role": "system", "content": "You are a CRM assistant. Answer in plain text, briefly, using only the material given."},
        {"role": "user", "content": f"{instruction}\n\n---\n{text}"},
    ]}
    answer = requests.post(url, json=body, headers=headers, timeout=settings["llm_timeout_seconds"], allow_redirects=False)
    answer.raise_for_status()
    content = answer.json()["choices"][0]["message"]["content"]
    return GeneratedText(text=str(content).strip(), source=f"openai-compatible:{settings['llm_model']}")


def default_generate(tenant: Any, purpose: str, instruction: str, text: str) -> GeneratedText:
    """The plugin's own answer: the configured endpoint, else the extractive summary."""
    settings = sdk.settings(tenant, "insights")
    if settings["llm_base_url"]:
        return openai_compatible(settings, instruction, text)
    if purpose == "reply":
        return GeneratedText(text=offline_reply(text), source="template")
    return GeneratedText(text=extractive_summary(text, settings["summary_sentences"]), source="extractive")


def offline_reply(material: str) -> str:
    """A reply draft without a model: a greeting, an acknowledgement that fits the mood
    of the customer's latest message (its first paragraph), its main point quoted, a next
    step. To edit before sending, like any draft."""
    latest = material.split("\n\n", 1)[0].strip()
    mood = score_text(latest).score
    if mood is not None and mood <= -0.05:
        thanks = "Thank you for telling us, and I am sorry for the trouble this has caused."
    elif mood is not None and mood >= 0.05:
        thanks = "Thank you for your message, it is good to hear from you."
    else:
        thanks = "Thank you for your message."
    point = extractive_summary(latest, 1).rstrip(".")
    about = f'\n\nAbout your point, "{point}": I am looking into it.' if point else ""
    return f"Hello,\n\n{thanks}{about} I will come back to you shortly with the next steps.\n\nBest regards"


def conversation_material(entity: str, record_id: int, conversation_id: int, limit: int = 10) -> str:
    """The customer's messages in one of the record's conversations, newest first,
    separated by blank lines (through the channels plugin's contract)."""
    import crm_plugins.channels.contrib as channels

    messages = [m for m in channels.messages_of(entity, record_id, limit=200) if m.conversation_id == conversation_id and m.direction == "in"]
    return "\n\n".join((m.body_text or m.subject or "").strip() for m in messages[:limit] if (m.body_text or m.subject))


def request_reply(entity: str, record_id: int, conversation_id: int) -> GeneratedTextRecord:
    """A reply draft for one of the record's conversations, queued like a summary."""
    with sdk.atomic():
        row = GeneratedTextRecord.create(entity=entity, record_id=record_id, purpose="reply", conversation_id=conversation_id, status="queued")
        sdk.enqueue(TASK_KIND, {"id": row.id})
    return row


def record_material(entity: str, record_id: int, limit: int = 40) -> str:
    """A record's notes and activities, newest first (two queries)."""
    column = {"lead": "lead", "contact": "contact", "company": "company", "deal": "deal"}[entity]
    notes = Note.select(Note.created_at, Note.body).where(getattr(Note, column) == record_id).order_by(Note.created_at.desc()).limit(limit).tuples()
    acts = Activity.select(Activity.occurred_at, Activity.subject, Activity.content).where(getattr(Activity, column) == record_id).order_by(Activity.occurred_at.desc()).limit(limit).tuples()
    items = [(at, body) for at, body in notes] + [(at, ". ".join(t for t in (subject, content) if t)) for at, subject, content in acts]
    items.sort(key=lambda item: item[0], reverse=True)
    return "\n".join(text.strip().rstrip(".") + "." for _at, text in items[:limit] if text and text.strip())


def request_summary(entity: str, record_id: int) -> GeneratedTextRecord:
    """Store a queued request and enqueue its task (in one transaction)."""
    with sdk.atomic():
        row = GeneratedTextRecord.create(entity=entity, record_id=record_id, purpose="summary", status="queued")
        sdk.enqueue(TASK_KIND, {"id": row.id})
    return row


def generate_task(task: Any) -> None:
    """Generate and store the text of a request (not transactional: it may call HTTP; a
    second run overwrites the same row, so it is idempotent)."""
    tenant = sdk.current_tenant()
    row = GeneratedTextRecord.get_or_none(GeneratedTextRecord.id == payload_of(task)["id"])
    if row is None:
        return
    try:
        result = _generate(tenant, row)
    except Exception as exc:
        if task.attempts >= task.max_attempts:  # the last attempt: say so on the request, then die visibly
            GeneratedTextRecord.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:300], finished_at=sdk.utcnow()).where(GeneratedTextRecord.id == row.id).execute()
        raise
    GeneratedTextRecord.update(status="done", text=result.text, source=result.source[:120], error="", finished_at=sdk.utcnow()).where(GeneratedTextRecord.id == row.id).execute()


def _generate(tenant: Any, row: GeneratedTextRecord) -> GeneratedText:
    settings = sdk.settings(tenant, "insights")
    if row.purpose == "reply":
        material = conversation_material(row.entity, row.record_id, row.conversation_id) if sdk.is_enabled(tenant, "channels") else ""
    else:
        material = record_material(row.entity, row.record_id)
    if settings["redact_personal_data"]:
        material = redact(material)
    instruction = INSTRUCTIONS[row.purpose]
    if not material:
        nothing = "No message from the customer to answer." if row.purpose == "reply" else "Nothing to summarise yet: no notes or activities."
        return GeneratedText(text=nothing, source="extractive")
    # Other plugins first; the plugin's own default is not a hook implementation, so that
    # an endpoint's error reaches the worker (retry, then failed) instead of being skipped.
    answer = sdk.first_answer(tenant, HOOK, tenant=tenant, purpose=row.purpose, instruction=instruction, text=material)
    return answer if answer is not None else default_generate(tenant, row.purpose, instruction, material)
