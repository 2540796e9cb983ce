"""Scoring: explainable rule-based and predictive lead scoring.

Metadata and the per-tenant settings schema only (cheap to import); the behaviour is in
``hooks.py`` and the modules it imports. Every key below is documented in README.md.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crmcore.sdk import Plugin

# scikit-learn is this plugin's extra, not a core dependency: without it the plugin is
# listed BROKEN with this message (the instance still runs), rather than failing later.
if importlib.util.find_spec("sklearn") is None:
    raise ImportError("the scoring plugin needs scikit-learn (its predictive model): pip install 'crm-framework[scoring]'")

LEAD_STATUSES = ("new", "contacted", "qualified", "unqualified", "converted")
COMPONENTS = ("base", "fit", "engagement", "recency", "other")


def _points(**kw: Any) -> fields.Float:
    return fields.Float(validate=validate.Range(min=-100, max=100), **kw)


def _points_map(default: dict[str, float]) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=100)),
        values=fields.Float(validate=validate.Range(min=-100, max=100)),
        load_default=lambda: dict(default),
    )


class WeightsSchema(Schema):
    """A multiplier per component (0 switches a component off)."""

    base = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=10))
    fit = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=10))
    engagement = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=10))
    recency = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=10))
    other = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=10))


class GradesSchema(Schema):
    """Lowest score of grades A, B and C; below C is D."""

    A = fields.Float(load_default=80.0, validate=validate.Range(min=0, max=100))
    B = fields.Float(load_default=60.0, validate=validate.Range(min=0, max=100))
    C = fields.Float(load_default=40.0, validate=validate.Range(min=0, max=100))

    @validates_schema
    def _descending(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("B", 0) >= data.get("A", 100):
            raise ValidationError("must be lower than A", "B")
        if data.get("C", 0) >= data.get("B", 100):
            raise ValidationError("must be lower than B", "C")


class BaseRulesSchema(Schema):
    """The classic rule set: probability, value bonus, recent-contact bonus."""

    use_probability = fields.Boolean(load_default=True)
    probability_weight = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=1))
    status_probability = fields.Dict(
        keys=fields.String(validate=validate.OneOf(LEAD_STATUSES)),
        values=fields.Integer(validate=validate.Range(min=0, max=100)),
        load_default=lambda: {"new": 10, "contacted": 20, "qualified": 40, "unqualified": 0, "converted": 60},
    )
    value_high = fields.Float(load_default=50000.0, validate=validate.Range(min=0))
    value_high_points = _points(load_default=10.0)
    value_mid = fields.Float(load_default=25000.0, validate=validate.Range(min=0))
    value_mid_points = _points(load_default=5.0)
    recent_contact_days = fields.Integer(load_default=7, validate=validate.Range(min=0, max=3650))
    recent_contact_points = _points(load_default=5.0)

    @validates_schema
    def _value_order(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("value_mid", 0) >= data.get("value_high", float("inf")):
            raise ValidationError("must be lower than value_high", "value_mid")


class FitSchema(Schema):
    """Who the lead is: company size, industry, job-title seniority, BANT fields filled."""

    company_size = _points_map({"1-10": 0, "11-50": 2, "51-200": 4, "201-500": 6, "501-1000": 7, "1000+": 8, "1001-5000": 8, "5001-10000": 8, "10001+": 8})
    industry = _points_map({})
    seniority = _points_map({"chief": 8, "ceo": 8, "cto": 8, "cfo": 8, "founder": 8, "owner": 6, "vp": 6, "vice president": 6, "director": 5, "head": 5, "manager": 3})
    bant_points = _points(load_default=2.5)


class EngagementSchema(Schema):
    """What the lead did lately: activities, inbound replies, chat messages in a window."""

    window_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=3650))
    activity_points = _points(load_default=1.0)
    activity_cap = fields.Float(load_default=10.0, validate=validate.Range(min=0, max=100))
    inbound_points = _points(load_default=2.0)
    inbound_cap = fields.Float(load_default=10.0, validate=validate.Range(min=0, max=100))
    chat_points = _points(load_default=1.0)
    chat_cap = fields.Float(load_default=5.0, validate=validate.Range(min=0, max=100))


class RecencySchema(Schema):
    """Days since the last activity: full points up to full_days, none from zero_days."""

    points = _points(load_default=10.0)
    full_days = fields.Integer(load_default=3, validate=validate.Range(min=0, max=3650))
    zero_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=3650))

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("zero_days", 1) <= data.get("full_days", 0):
            raise ValidationError("must be greater than full_days", "zero_days")


class ScoringSettings(Schema):
    """``[settings.scoring]`` of a tenant file (see README.md for every key)."""

    weights = fields.Nested(WeightsSchema, load_default=lambda: WeightsSchema().load({}))
    grades = fields.Nested(GradesSchema, load_default=lambda: GradesSchema().load({}))
    base = fields.Nested(BaseRulesSchema, load_default=lambda: BaseRulesSchema().load({}))
    fit = fields.Nested(FitSchema, load_default=lambda: FitSchema().load({}))
    engagement = fields.Nested(EngagementSchema, load_default=lambda: EngagementSchema().load({}))
    recency = fields.Nested(RecencySchema, load_default=lambda: RecencySchema().load({}))
    thresholds = fields.List(
        fields.Float(validate=validate.Range(min=0, max=100)), load_default=lambda: [50.0, 80.0]
    )
    predictive_weight = fields.Float(load_default=0.5, validate=validate.Range(min=0, max=1))
    min_training_examples = fields.Integer(load_default=30, validate=validate.Range(min=8, max=1_000_000))
    debounce_seconds = fields.Integer(load_default=10, validate=validate.Range(min=0, max=3600))


plugin = Plugin(
    name="scoring",
    version="0.1.0",
    summary="Explainable rule-based and predictive lead scoring.",
    settings=ScoringSettings,
    hookspecs="crm_plugins.scoring.hookspecs",
)
