"""Tables of the scoring plugin (``scoring_*``)."""

from __future__ import annotations

import peewee

from crmcore.sdk import JSONText, Lead, Tenant, TenantModel, User, require_tenant_id, utcnow


def _tenant_without_index() -> peewee.ForeignKeyField:
    """The tenant column without its own index: the (tenant, lead ...) indexes start with
    it, and one index fewer per row counts when 100,000 scores are written at once."""
    return peewee.ForeignKeyField(Tenant, on_delete="CASCADE", index=False, default=require_tenant_id, backref="+")


class LeadScore(TenantModel):
    """The current score of one lead, with its explanation."""

    tenant = _tenant_without_index()
    lead = peewee.ForeignKeyField(Lead, on_delete="CASCADE", backref="+")
    score = peewee.FloatField(default=0)  # final 0-100 (rule score blended with the prediction)
    rule_score = peewee.FloatField(default=0)  # the rules alone, 0-100
    grade = peewee.CharField(max_length=1, default="D")
    components = JSONText(default=dict)  # component -> points (weighted)
    factors = JSONText(default=list)  # [{name, label, component, points, reason}]
    probability = peewee.FloatField(null=True)  # predicted chance of winning, 0-1; None without a model
    top_features = JSONText(default=list)  # [{feature, label, contribution}] for the prediction
    computed_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "scoring_lead_score"
        indexes = ((("tenant", "lead"), True), (("tenant", "score", "id"), False))


class ScoreHistory(TenantModel):
    """One row each time a lead's score changes (the trend)."""

    tenant = _tenant_without_index()
    lead = peewee.ForeignKeyField(Lead, on_delete="CASCADE", backref="+")
    score = peewee.FloatField()
    grade = peewee.CharField(max_length=1)
    at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "scoring_history"
        indexes = ((("tenant", "lead", "at"), False),)


class ScoringModel(TenantModel):
    """The tenant's trained predictive model (coefficients as JSON, never a pickle) and
    its quality on held-out data."""

    trained_at = peewee.DateTimeField(default=utcnow)
    examples = peewee.IntegerField(default=0)
    positives = peewee.IntegerField(default=0)
    auc = peewee.FloatField(null=True)
    brier = peewee.FloatField(null=True)
    params = JSONText(null=True)  # {"features", "mean", "scale", "coef", "intercept"}; None: not enough data
    message = peewee.TextField(default="")

    class Meta:
        table_name = "scoring_model"
        indexes = ((("tenant",), True),)


class ScoringOverride(TenantModel):
    """Settings saved from the admin page, layered over ``[settings.scoring]`` of the
    tenant file (the core has no writer for tenant files; see README.md)."""

    values = JSONText(default=dict)
    updated_at = peewee.DateTimeField(default=utcnow)
    updated_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    version = peewee.IntegerField(default=1)

    class Meta:
        table_name = "scoring_override"
        indexes = ((("tenant",), True),)


MODELS = [LeadScore, ScoreHistory, ScoringModel, ScoringOverride]
