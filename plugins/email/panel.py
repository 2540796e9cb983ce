"""The "Email" panel of a lead, contact or deal page: recent emails with their status,
each one's new text with its quoted text and signature folded, and a compose form
(posted to /app/email/compose/<entity>/<id>)."""

from __future__ import annotations

from typing import Any

from flask import render_template

import crm_plugins.channels.contrib as channels
from crm_plugins.email.quoting import split_quoted
from crmcore import sdk


def render(entity: str, record: Any) -> str:
    recent = channels.messages_of(entity, record.id, "email", limit=10)
    templates = channels.templates_for("email")
    texts = {m.id: split_quoted((m.body_text or "")[:20_000]) for m in recent}
    return render_template("email/_panel.html", entity=entity, record=record, recent=recent, templates=templates, texts=texts, now=sdk.utcnow(),
                           can_send=sdk.has_permission("channels:send"), address=getattr(record, "email", None) or "")
