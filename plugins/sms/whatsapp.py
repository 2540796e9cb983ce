"""WhatsApp's rules: the 24-hour customer-service window and the tenant's approved
templates (``settings.sms.whatsapp_templates``: the provider's content id, its body with
``{{1}}`` placeholders and the variables' labels), which may be sent outside the window
as the provider's ``ContentSid`` + ``ContentVariables``."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import crm_plugins.channels.contrib as channels
from crmcore.sdk import utcnow

PLACEHOLDER = re.compile(r"\{\{\s*(\d{1,2})\s*\}\}")
#: what WhatsApp refuses in a variable (no new lines or tabs, not more than 4 spaces in a row)
BAD_VARIABLE = re.compile(r"[\n\r\t]| {5,}")
MAX_VARIABLE = 1024


def placeholders(body: str) -> list[str]:
    """The variables of a template body, ``"1"``, ``"2"`` ... in order, once each."""
    return sorted(set(PLACEHOLDER.findall(body or "")), key=int)


@dataclass(frozen=True)
class Window:
    """WhatsApp's customer-service window with one address: open until ``closes_at``."""

    closes_at: dt.datetime | None  # None: the customer never wrote

    @property
    def open(self) -> bool:
        return self.closes_at is not None and self.closes_at > utcnow()

    def describe(self) -> str:
        if not self.open:
            return "closed: only an approved template can be sent"
        left = int((self.closes_at - utcnow()).total_seconds() // 60)
        return f"open until {self.closes_at:%Y-%m-%d %H:%M} UTC ({left // 60} h {left % 60:02d} min left)"


def window(conf: dict[str, Any], address: str) -> Window:
    """The window with ``address`` (``whatsapp:+...``): ``whatsapp_window_hours`` after
    the customer's last inbound WhatsApp message."""
    last = channels.last_received_at("whatsapp", address)
    return Window(last + dt.timedelta(hours=conf["whatsapp_window_hours"]) if last else None)


def templates(conf: dict[str, Any]) -> list[dict[str, Any]]:
    """The tenant's approved templates, each with its ``placeholders``."""
    return [{**t, "placeholders": placeholders(t["body"])} for t in conf.get("whatsapp_templates") or []]


def template_named(conf: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((t for t in templates(conf) if t["name"] == name), None)


def render(body: str, variables: dict[str, str]) -> str:
    """The template's text as the customer reads it (kept as the message's body)."""
    return PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), body)


def check_template(conf: dict[str, Any], options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The template ``options`` name and its variables (``{"1": "Ada"}``), checked;
    raises :class:`Refused` with the field's reasons."""
    name = options.get("template")
    template = template_named(conf, name) if isinstance(name, str) else None
    if template is None:
        known = ", ".join(t["name"] for t in templates(conf)) or "none registered"
        raise channels.Refused({"template": [f"no approved WhatsApp template named {str(name)[:100]!r} (this tenant's: {known})"]})
    given = options.get("variables") or {}
    if not isinstance(given, dict):
        raise channels.Refused({"variables": ['an object of the template\'s variables: {"1": "...", "2": "..."}']})
    problems: list[str] = []
    unknown = sorted(str(key) for key in given if str(key) not in template["placeholders"])
    if unknown:
        problems.append(f"not variables of {template['name']!r}: {', '.join(unknown)[:200]}")
    variables: dict[str, str] = {}
    for key in template["placeholders"]:
        value = given.get(key)
        label = _label(template, key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{{{{{key}}}}} ({label}) is missing")
        elif len(value) > MAX_VARIABLE or BAD_VARIABLE.search(value):
            problems.append(f"{{{{{key}}}}} ({label}): at most {MAX_VARIABLE} characters, one line, no tabs or runs of 5 spaces")
        else:
            variables[key] = value.strip()
    if problems:
        raise channels.Refused({"variables": problems})
    return template, variables


def _label(template: dict[str, Any], key: str) -> str:
    labels = template.get("variables") or []
    index = int(key) - 1
    return labels[index] if 0 <= index < len(labels) else f"variable {key}"


def labelled_placeholders(template: dict[str, Any]) -> list[tuple[str, str]]:
    """``[("1", "First name"), ...]``: what the composer asks for."""
    return [(key, _label(template, key)) for key in template["placeholders"]]
