"""Chat: website chat widget, agent inbox, lead capture and an offline assistant (metadata only)."""

import importlib.util
import re

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crmcore.sdk import Plugin

# scikit-learn is this plugin's extra, not a core dependency: without it the plugin is
# listed BROKEN with this message (the instance still runs), rather than failing later.
if importlib.util.find_spec("sklearn") is None:
    raise ImportError("the chat plugin needs scikit-learn (its assistant's FAQ matching): pip install 'crm-framework[chat]'")

PRECHAT_FIELDS = ("name", "email", "phone")
#: what a visitor may attach (recognised by the file's first bytes, not by its name)
ATTACHMENT_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_ORIGIN = re.compile(r"^https?://[^/\s]+$")


class ChatSettings(Schema):
    """Per-tenant settings of the chat plugin (``[settings.chat]``); README lists each key."""

    public_key = fields.String(load_default="", validate=validate.Length(max=100))
    allowed_origins = fields.List(fields.String(validate=validate.Regexp(_ORIGIN, error="an origin like https://www.example.com (no path)")), load_default=list)
    colour = fields.String(load_default="#2563eb", validate=validate.Regexp(_COLOUR, error="a colour like #2563eb"))
    position = fields.String(load_default="right", validate=validate.OneOf(("right", "left")))
    title = fields.String(load_default="Chat with us", validate=validate.Length(min=1, max=80))
    greeting = fields.String(load_default="Hi! How can we help you today?", validate=validate.Length(max=500))
    avatar_url = fields.String(load_default="", validate=validate.Length(max=500))
    offline_message = fields.String(load_default="We are offline right now. Leave your email and we will get back to you.", validate=validate.Length(max=500))
    prechat_fields = fields.List(fields.String(validate=validate.OneOf(PRECHAT_FIELDS)), load_default=list)
    prechat_required = fields.List(fields.String(validate=validate.OneOf(PRECHAT_FIELDS)), load_default=list)
    custom_css = fields.String(load_default="", validate=validate.Length(max=20000))
    max_message_length = fields.Integer(load_default=2000, validate=validate.Range(min=1, max=20000))
    visitor_messages_per_minute = fields.Integer(load_default=20, validate=validate.Range(min=1))
    ip_requests_per_minute = fields.Integer(load_default=120, validate=validate.Range(min=1))
    sessions_per_ip_per_hour = fields.Integer(load_default=30, validate=validate.Range(min=1))
    phone_region = fields.String(load_default="US", validate=validate.Length(equal=2))
    assistant_enabled = fields.Boolean(load_default=True)
    assistant_delay_seconds = fields.Integer(load_default=60, validate=validate.Range(min=0, max=86400))
    assistant_confidence = fields.Float(load_default=0.3, validate=validate.Range(min=0, max=1))
    open_days = fields.List(fields.Integer(validate=validate.Range(min=0, max=6)), load_default=lambda: [0, 1, 2, 3, 4, 5, 6])
    open_from = fields.String(load_default="00:00", validate=validate.Regexp(_TIME, error="a time like 09:00"))
    open_until = fields.String(load_default="24:00", validate=validate.Regexp(_TIME, error="a time like 17:30"))
    timezone = fields.String(load_default="UTC", validate=validate.Length(min=1, max=64))
    attachments_enabled = fields.Boolean(load_default=True)
    attachment_max_mb = fields.Float(load_default=5.0, validate=validate.Range(min=0.01, max=50))
    attachment_types = fields.List(fields.String(validate=validate.OneOf(ATTACHMENT_TYPES)), load_default=lambda: list(ATTACHMENT_TYPES))
    canned_responses = fields.List(fields.String(validate=validate.Length(min=1, max=1000)), load_default=list, validate=validate.Length(max=50))
    agent_capacity = fields.Integer(load_default=5, validate=validate.Range(min=1, max=1000))

    @validates_schema
    def _required_are_shown(self, data, **_):
        missing = set(data.get("prechat_required", [])) - set(data.get("prechat_fields", []))
        if missing:
            raise ValidationError(f"required fields must also be in prechat_fields: {', '.join(sorted(missing))}", "prechat_required")
        if data.get("timezone"):
            import zoneinfo

            try:
                zoneinfo.ZoneInfo(data["timezone"])
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValidationError("an IANA time zone like Europe/Berlin", "timezone") from None


plugin = Plugin(
    name="chat",
    version="0.1.0",
    summary="Website chat widget, agent inbox, lead capture, assistant.",
    settings=ChatSettings,
    hookspecs="crm_plugins.chat.hookspecs",
)
