"""SMS and WhatsApp: channels (plugins/channels) sent and received through a
Twilio-compatible provider (the Messages API, status callbacks, inbound webhook).

Metadata and the per-tenant settings schema only; the behaviour is in ``hooks.py``.
Every key below is documented in README.md.
"""

from __future__ import annotations

import phonenumbers
from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from crmcore.sdk import Plugin

DEFAULT_HELP = "Reply STOP to stop receiving messages, START to receive them again."
DEFAULT_STOP_REPLY = "You are unsubscribed and will receive no more messages. Reply START to resubscribe."
DEFAULT_START_REPLY = "You are subscribed again. Reply STOP to unsubscribe."


class WhatsAppTemplate(Schema):
    """One approved WhatsApp template (``[[settings.sms.whatsapp_templates]]``)."""

    #: what reps and the API call it (``channel_options.template``)
    name = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_]{1,64}$", error="lower-case letters, digits and _ (at most 64)"))
    #: the provider's content id of the approved template (Twilio: HX + 32 hex digits)
    content_sid = fields.String(required=True, validate=validate.Regexp(r"^HX[0-9A-Za-z]{1,64}$", error="the provider's content id, HX..."))
    #: the approved text with {{1}}, {{2}} ... (shown in the composer, kept as the message's body)
    body = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    #: the labels of {{1}}, {{2}} ... in the composer
    variables = fields.List(fields.String(validate=validate.Length(min=1, max=60)), load_default=list, validate=validate.Length(max=20))

    @validates_schema
    def _labels(self, data: dict, **kwargs) -> None:
        from crm_plugins.sms.whatsapp import placeholders

        found = placeholders(data.get("body", ""))
        if found != [str(n) for n in range(1, len(found) + 1)]:
            raise ValidationError("the placeholders must be {{1}}, {{2}} ... without gaps", "body")
        if len(data.get("variables") or []) > len(found):
            raise ValidationError(f"{len(data['variables'])} labels for {len(found)} placeholders", "variables")


class SmsSettings(Schema):
    """``[settings.sms]`` of a tenant file; the auth token as ``{ "$env" = "NAME" }``."""

    #: the provider's API root (Twilio: https://api.twilio.com); tests point it at loopback
    base_url = fields.Url(load_default="https://api.twilio.com", require_tld=False, schemes={"http", "https"})
    account_sid = fields.String(load_default="", validate=validate.Length(max=64))
    auth_token = fields.String(load_default="", validate=validate.Length(max=200))
    #: the tenant's sending number (E.164) and its WhatsApp sender ("" : WhatsApp off)
    from_number = fields.String(load_default="", validate=validate.Length(max=32))
    whatsapp_from = fields.String(load_default="", validate=validate.Length(max=32))
    #: the region numbers written without +country are read in (ISO 3166 alpha-2)
    default_region = fields.String(load_default="US", validate=validate.Length(equal=2))
    #: the public root URL the provider calls (status callbacks, signatures); "" : this request's
    public_url = fields.String(load_default="", validate=validate.Length(max=300))
    #: a message from a number no contact or lead has: a new lead, or ignored
    unknown_sender = fields.String(load_default="lead", validate=validate.OneOf(["lead", "ignore"]))
    help_text = fields.String(load_default=DEFAULT_HELP, validate=validate.Length(min=1, max=600))
    stop_reply = fields.String(load_default=DEFAULT_STOP_REPLY, validate=validate.Length(max=600))
    start_reply = fields.String(load_default=DEFAULT_START_REPLY, validate=validate.Length(max=600))
    timeout_seconds = fields.Float(load_default=15.0, validate=validate.Range(min=0.1, max=120))
    #: WhatsApp's customer-service window: free text only this long after their last message
    whatsapp_window_hours = fields.Float(load_default=24.0, validate=validate.Range(min=0, max=24 * 7))
    #: the approved templates, the only messages sent outside the window
    whatsapp_templates = fields.List(fields.Nested(WhatsAppTemplate), load_default=list, validate=validate.Length(max=200))

    @validates("default_region")
    def _region(self, value: str, **kwargs) -> None:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValidationError(f"{value!r} is not a region phonenumbers knows (ISO 3166 alpha-2, e.g. US, GB, DE)")

    @validates("whatsapp_templates")
    def _unique_names(self, value: list, **kwargs) -> None:
        names = [t["name"] for t in value]
        if len(names) != len(set(names)):
            raise ValidationError("two templates with the same name")


plugin = Plugin(
    name="sms",
    version="0.1.0",
    summary="SMS and WhatsApp on the channels inbox through a Twilio-compatible provider.",
    requires=("channels",),
    settings=SmsSettings,
)
