"""The email plugin's automation step, "send a template" (``send_template``), offered
through the automation plugin's ``crm_automation_actions`` hook.

The step queues one email through the channels outbox (the channels compose: the
template rendered for the record, the address checked, Message-ID fixed), in the
transaction that records the step done, keyed ``automation:<run>:<step>`` so it is
queued once; the outbox's drain task sends it. A record without an email address, an
undeliverable address or (marketing mail) one that unsubscribed: the step is refused and
the run stops with the reason (``StopRun``), nothing queued, not retried.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates
from peewee import fn

from crm_plugins.automation.contrib import (
    ActionCall,
    AutomationAction,
    AutomationTrigger,
    StopRun,
    TriggerEvent,
)
from crm_plugins.channels.contrib import Refused, compose, templates_for
from crm_plugins.channels.contrib import template as template_by_id
from crm_plugins.email import bounces, unsubscribe
from crmcore.sdk import Contact, Lead


class SendTemplateParams(Schema):
    template_id = fields.Integer(required=True, metadata={"description": "A channels message template for email (or for every channel)."})
    purpose = fields.String(load_default="sales", validate=validate.OneOf(["sales", "marketing"]),
                            metadata={"description": "marketing: an unsubscribe link and headers; refused for an address that unsubscribed."})

    @validates("template_id")
    def known_template(self, value: int, **_: Any) -> None:
        template = template_by_id(value)
        if template is None or template.channel not in (None, "email"):
            raise ValidationError("No email template with this id in this tenant.")


def send_template(call: ActionCall) -> str:
    record = call.record
    address = (getattr(record, "email", None) or "").strip()
    if not address:
        raise StopRun("the record has no email address")
    if bounces.undeliverable([address]):
        raise StopRun(f"{address} is undeliverable (it bounced)")
    if unsubscribe.unsubscribed([address]):
        raise StopRun(f"{address} unsubscribed")
    template = template_by_id(call.params["template_id"])
    if template is None:
        raise StopRun(f"the template {call.params['template_id']} was deleted")
    try:
        message = compose(
            call.tenant, channel_name="email", entity=call.entity, record=record, conversation=None, to=[address], cc=None,
            subject=None, body=None, html=None, template=template, user=None,
            idempotency_key=f"automation:{call.run_id}:{call.step}", purpose=call.params["purpose"])
    except Refused as exc:
        raise StopRun(str(exc)) from None
    return f"email #{message.id} queued to {address} ({template.name})"


def template_choices(tenant: Any) -> dict[str, list[tuple[Any, str]]]:
    """The email templates, for the rule editor's picker."""
    return {"template_id": [(t.id, t.name) for t in templates_for("email")]}


ACTIONS = [AutomationAction("send_template", "Send an email template", send_template, SendTemplateParams, ("lead", "contact"),
                            description="An email from a message template to the record's address, through the outbox.",
                            choices=template_choices)]


def _unsubscribed(address: str = "", **_: Any) -> TriggerEvent | None:
    """The contact, else the newest lead, with the address (as inbound mail finds them)."""
    address = (address or "").lower()
    if not address:
        return None
    contact = Contact.select(Contact.id).where(fn.LOWER(Contact.email) == address).order_by(Contact.id).first()
    if contact is not None:
        return TriggerEvent("contact", contact.id, {"address": address})
    lead = Lead.select(Lead.id).where(fn.LOWER(Lead.email) == address).order_by(Lead.id.desc()).first()
    return TriggerEvent("lead", lead.id, {"address": address}) if lead is not None else None


TRIGGERS = [AutomationTrigger("email_unsubscribed", unsubscribe.UNSUBSCRIBED_SIGNAL, "An address unsubscribes from marketing email (email)",
                              ("lead", "contact"), _unsubscribed)]
