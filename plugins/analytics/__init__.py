"""Analytics: pipeline, funnel, win rate, deal size, sales cycle, lead sources, response
time and activity figures, computed in SQL, with definitions, drill-down and export.

Metadata and the per-tenant settings schema only (cheap to import); the behaviour is in
``hooks.py`` and the modules it imports. Every key below is documented in README.md.
"""

from __future__ import annotations

import zoneinfo

from marshmallow import Schema, ValidationError, fields, validate

from crmcore.sdk import Plugin


def valid_time_zone(value: str) -> None:
    """An IANA time zone name that zoneinfo knows (``Europe/Berlin``)."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError("Not a known IANA time zone (like Europe/Berlin).") from exc


class AnalyticsSettings(Schema):
    """``[settings.analytics]`` of a tenant file (see README.md)."""

    #: The tenant's time zone: date ranges ("from 1 March to 31 March") are its days.
    time_zone = fields.String(load_default="UTC", validate=[validate.Length(min=1, max=64), valid_time_zone])
    #: First month of the fiscal year (1 = January): the date presets' quarters and years.
    fiscal_year_start_month = fields.Integer(load_default=1, validate=validate.Range(min=1, max=12))
    #: The unfiltered dashboard is computed in the background at most this many minutes
    #: apart and shown from that copy (0: always computed for the request).
    dashboard_refresh_minutes = fields.Integer(load_default=15, validate=validate.Range(min=0, max=1440))


plugin = Plugin(
    name="analytics",
    version="0.1.0",
    summary="Pipeline, funnel, win rate, deal size, sales cycle, lead and activity figures with definitions, drill-down and CSV export.",
    settings=AnalyticsSettings,
)
