"""Insights: offline sentiment, explained deal risk, next best actions, customer health.

Metadata and the per-tenant settings schema only (cheap to import); the behaviour is in
``hooks.py`` and the modules it imports. Every key below is documented in README.md.
"""

from __future__ import annotations

import importlib.util

from marshmallow import Schema, fields, validate

from crmcore.sdk import Plugin

# vaderSentiment is this plugin's extra: without it the plugin is listed BROKEN with
# this message (the instance still runs), rather than failing on the first interaction.
if importlib.util.find_spec("vaderSentiment") is None:
    raise ImportError("the insights plugin needs vaderSentiment: pip install 'crm-framework[insights]'")


#: the deal risk factors (plugins/insights/risk.py), whose points ``risk_points`` overrides
RISK_FACTORS = (
    "stale_in_stage", "no_activity", "close_date_passed", "negative_sentiment", "single_contact", "no_next_task", "value_lowered", "close_date_pushed",
)


def _days(default: float, low: float = 0, high: float = 3650) -> fields.Float:
    return fields.Float(load_default=default, validate=validate.Range(min=low, max=high))


class InsightsSettings(Schema):
    """``[settings.insights]`` of a tenant file (see README.md for every key)."""

    # sentiment
    min_english_share = fields.Float(load_default=0.3, validate=validate.Range(min=0, max=1))
    backfill_batch = fields.Integer(load_default=500, validate=validate.Range(min=1, max=10000))
    sentiment_window_days = _days(30, 1)
    negative_sentiment = fields.Float(load_default=-0.05, validate=validate.Range(min=-1, max=1))
    # deal risk
    default_stage_days = _days(21, 1)
    no_activity_days = _days(14, 1)
    risk_points = fields.Dict(
        keys=fields.String(validate=validate.OneOf(RISK_FACTORS)), values=fields.Float(validate=validate.Range(min=0, max=100)), load_default=dict,
    )
    history_window_days = _days(90, 1)
    close_date_pushes = fields.Integer(load_default=2, validate=validate.Range(min=1, max=100))
    medium_points = fields.Float(load_default=2, validate=validate.Range(min=0, max=100))
    high_points = fields.Float(load_default=5, validate=validate.Range(min=0, max=100))
    debounce_seconds = fields.Integer(load_default=60, validate=validate.Range(min=0, max=3600))
    # next best actions
    first_contact_hours = _days(24, 0, 24 * 365)
    lead_follow_up_days = _days(5, 1)
    done_snooze_days = _days(7, 0)
    # customer health
    satisfaction_field = fields.String(load_default="satisfaction", validate=validate.Length(min=1, max=60))
    satisfaction_max = fields.Float(load_default=10, validate=validate.Range(min=1, max=100))
    engagement_target = fields.Integer(load_default=4, validate=validate.Range(min=1, max=1000))
    health_window_days = _days(30, 1)
    # text generation
    llm_base_url = fields.String(load_default="", validate=validate.Regexp(r"^(https?://\S+)?$", error="an http(s) URL ending in /v1, or empty"))
    llm_model = fields.String(load_default="", validate=validate.Length(max=200))
    llm_api_key = fields.String(load_default="", validate=validate.Length(max=500))
    llm_timeout_seconds = fields.Float(load_default=30, validate=validate.Range(min=1, max=300))
    redact_personal_data = fields.Boolean(load_default=True)
    summary_sentences = fields.Integer(load_default=3, validate=validate.Range(min=1, max=10))
    # alerts
    alert_risk_level = fields.String(load_default="high", validate=validate.OneOf(("medium", "high", "never")))


plugin = Plugin(
    name="insights",
    version="0.1.0",
    summary="Offline sentiment, explained deal risk, next best actions and customer health.",
    settings=InsightsSettings,
    hookspecs="crm_plugins.insights.hookspecs",
)
