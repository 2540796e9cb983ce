"""Automation: rules (a trigger, conditions, ordered steps) that act on the CRM's facts.

Metadata and the per-tenant settings schema only; the behaviour is in ``hooks.py`` and the
modules it imports. Every key below is documented in README.md.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from crmcore.sdk import Plugin


def valid_timezone(name: str) -> None:
    """An IANA time zone name (schedules fire in it)."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone {name!r} (an IANA name such as Europe/Berlin).") from None


class AutomationSettings(Schema):
    """``[settings.automation]`` of a tenant file (see README.md)."""

    max_depth = fields.Integer(load_default=3, validate=validate.Range(min=1, max=20))
    runs_per_record_per_hour = fields.Integer(load_default=5, validate=validate.Range(min=1, max=10000))
    step_attempts = fields.Integer(load_default=4, validate=validate.Range(min=1, max=20))
    retry_base_seconds = fields.Float(load_default=30.0, validate=validate.Range(min=0, max=86400))
    dry_run_records = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))
    max_rules = fields.Integer(load_default=200, validate=validate.Range(min=1, max=5000))
    time_window_hours = fields.Float(load_default=24.0, validate=validate.Range(min=0.01, max=24 * 365))
    retention_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=3650))
    timezone = fields.String(load_default="UTC", validate=valid_timezone)


plugin = Plugin(
    name="automation",
    version="0.1.0",
    summary="Automation rules: triggers, conditions, steps with waits; durable runs with loop guards and a run log.",
    settings=AutomationSettings,
    hookspecs="crm_plugins.automation.hookspecs",
)
