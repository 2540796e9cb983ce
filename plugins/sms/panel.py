"""The "SMS" panel of a lead, contact or deal page: recent texts with their status (and
the provider's error) and a compose form with a live segment counter."""

from __future__ import annotations

from typing import Any

from flask import render_template

import crm_plugins.channels.contrib as channels
from crm_plugins.sms import provider
from crmcore import sdk


def phone_of(entity: str, record: Any) -> str:
    if entity == "deal":
        return ""
    return getattr(record, "phone", None) or ""


def render(tenant: Any, entity: str, record: Any, values: dict[str, str] | None = None, errors: dict[str, list[str]] | None = None) -> str:
    recent = channels.messages_of(entity, record.id, "sms", limit=10) + channels.messages_of(entity, record.id, "whatsapp", limit=10)
    recent.sort(key=lambda m: m.id, reverse=True)
    conf = provider.settings(tenant)
    return render_template("sms/_panel.html", entity=entity, record=record, recent=recent[:10], templates=channels.templates_for("sms"),
                           can_send=sdk.has_permission("channels:send"), whatsapp=bool(conf["whatsapp_from"]),
                           values=values or {"to": phone_of(entity, record), "body": "", "channel": "sms"}, errors=errors or {})
