"""Channels: conversations, messages, the outbox, templates and the inbox, written once
for every channel (email, SMS, ...) that a plugin registers through ``crm_channels``.

Metadata and the per-tenant settings schema only; the behaviour is in ``hooks.py``.
Every key below is documented in README.md.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates

from crmcore.sdk import Plugin


class ChannelsSettings(Schema):
    """``[settings.channels]`` of a tenant file."""

    #: what a template variable with no value renders as
    template_default = fields.String(load_default="", validate=validate.Length(max=100))
    #: attempts of a send before the message is marked failed
    send_attempts = fields.Integer(load_default=8, validate=validate.Range(min=1, max=30))
    #: seconds before the first retry of a temporary failure (then doubling, at most an hour)
    retry_seconds = fields.Float(load_default=30.0, validate=validate.Range(min=0, max=3600))
    #: "21:00-08:00": non-urgent outbound messages wait until the window ends ("": none)
    quiet_hours = fields.String(load_default="", validate=validate.Length(max=11))
    #: the tenant's IANA time zone: quiet hours of a recipient without one of their own
    time_zone = fields.String(load_default="UTC", validate=validate.Length(min=1, max=64))

    @validates("quiet_hours")
    def _window(self, value: str, **kwargs) -> None:
        from crm_plugins.channels.quiet_hours import parse_window

        try:
            parse_window(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    @validates("time_zone")
    def _zone(self, value: str, **kwargs) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"{value!r} is not an IANA time zone (like Europe/Berlin)") from None
    #: texts an agent inserts into a reply in the inbox, on any channel (at most 50)
    canned_responses = fields.List(fields.String(validate=validate.Length(min=1, max=1000)), load_default=list,
                                   validate=validate.Length(max=50))


plugin = Plugin(
    name="channels",
    version="0.1.0",
    summary="One inbox for every channel: conversations, messages, outbox, templates, timeline.",
    settings=ChannelsSettings,
    hookspecs="crm_plugins.channels.hookspecs",
)
