"""Webhooks: signed outgoing HTTP POSTs of the CRM's events to the tenant's endpoints.

Metadata and the per-tenant settings schema only (cheap to import); the behaviour is in
``hooks.py`` and the modules it imports. Every key below is documented in README.md.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from crmcore.sdk import Plugin

#: Svix's schedule: the first attempt at once, then retries after 5 s, 5 min, 30 min,
#: 2 h, 5 h, 10 h and 10 h (seconds before each attempt).
DEFAULT_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


class WebhooksSettings(Schema):
    """``[settings.webhooks]`` of a tenant file (see README.md for every key)."""

    retry_schedule = fields.List(
        fields.Float(validate=validate.Range(min=0, max=86400)),
        validate=validate.Length(min=1, max=20),
        load_default=lambda: list(DEFAULT_SCHEDULE),
        metadata={"description": "Seconds to wait before each attempt; one attempt per entry."},
    )
    timeout_seconds = fields.Float(load_default=15.0, validate=validate.Range(min=0.1, max=15))
    disable_after_days = fields.Float(load_default=5.0, validate=validate.Range(min=0, max=90))
    max_endpoints = fields.Integer(load_default=20, validate=validate.Range(min=1, max=500))


plugin = Plugin(
    name="webhooks",
    version="0.1.0",
    summary="Signed outgoing webhooks (Standard Webhooks) with retries, a delivery log and replay.",
    settings=WebhooksSettings,
    hookspecs="crm_plugins.webhooks.hookspecs",
)
