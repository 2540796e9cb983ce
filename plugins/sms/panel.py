"""The "SMS" panel of a lead, contact or deal page: recent texts with their status (and
the provider's error) and a compose form with a live segment counter."""

from __future__ import annotations

from typing import Any

from flask import render_template

import crm_plugins.channels.contrib as channels
from crm_plugins.sms import provider, text, whatsapp
from crmcore import sdk


def phone_of(entity: str, record: Any) -> str:
    if entity == "deal":
        return ""
    return getattr(record, "phone", None) or ""


def render(tenant: Any, entity: str, record: Any, values: dict[str, str] | None = None, errors: dict[str, list[str]] | None = None) -> str:
    recent = channels.messages_of(entity, record.id, "sms", limit=10) + channels.messages_of(entity, record.id, "whatsapp", limit=10)
    recent.sort(key=lambda m: m.id, reverse=True)
    conf = provider.settings(tenant)
    values = values or {"to": phone_of(entity, record), "body": "", "channel": "sms"}
    wa_templates = [{**t, "labelled": whatsapp.labelled_placeholders(t)} for t in whatsapp.templates(conf)]
    return render_template("sms/_panel.html", entity=entity, record=record, recent=recent[:10], templates=channels.templates_for("sms"),
                           can_send=sdk.has_permission("channels:send"), whatsapp=bool(conf["whatsapp_from"]),
                           window=window_state(conf, values.get("to", "")) if conf["whatsapp_from"] else None,
                           wa_templates=wa_templates, values=values, errors=errors or {})


def window_state(conf: dict[str, Any], to: str) -> dict[str, Any]:
    """What the composer says of WhatsApp's window with ``to`` (any way of writing it)."""
    try:
        address = provider.address_of("whatsapp", text.normalise(to, conf["default_region"]))
    except text.BadNumber:
        return {"open": False, "closes_at": None, "text": "unknown until the number is valid"}
    state = whatsapp.window(conf, address)
    return {"open": state.open, "closes_at": state.closes_at.isoformat() + "Z" if state.open else None, "text": state.describe()}
