"""/api/v1/scoring: a lead's score and why, lists by score, recompute and training."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import fields, validate

from crm_plugins.scoring import bulk, engine, predictive
from crm_plugins.scoring.models import LeadScore, ScoreHistory, ScoringModel
from crmcore import sdk
from crmcore.sdk import ApiSchema as Schema
from crmcore.sdk import Lead, PageArgs, require

blp = Blueprint("scoring_api", __name__, url_prefix="/scoring", description="Lead scoring: scores, reasons, predictions.")

#: How many history points a lead's detail returns (newest last).
HISTORY_POINTS = 60


class FactorSchema(Schema):
    name = fields.String(metadata={"description": "Rule or factor name (`<plugin>:<factor>` for factors of other plugins)."})
    label = fields.String()
    component = fields.String(metadata={"description": "base, fit, engagement, recency or other."})
    points = fields.Float(metadata={"description": "Points after the component's weight."})
    reason = fields.String()


class FeatureSchema(Schema):
    feature = fields.String()
    label = fields.String()
    contribution = fields.Float(metadata={"description": "Contribution to the log-odds of winning, against an average lead."})
    value = fields.Float()


class HistorySchema(Schema):
    score = fields.Float()
    grade = fields.String()
    at = fields.DateTime()


class LeadScoreSchema(Schema):
    lead_id = fields.Integer()
    name = fields.String()
    status = fields.String()
    score = fields.Float(metadata={"description": "0-100: the rule score, blended with the prediction when a model is trained."})
    rule_score = fields.Float()
    grade = fields.String(metadata={"description": "A, B, C or D (thresholds in settings)."})
    components = fields.Dict(keys=fields.String(), values=fields.Float())
    factors = fields.List(fields.Nested(FactorSchema))
    probability = fields.Float(allow_none=True, metadata={"description": "Predicted chance of winning (0-1); null without a trained model."})
    top_features = fields.List(fields.Nested(FeatureSchema))
    computed_at = fields.DateTime(allow_none=True, metadata={"description": "null: not stored yet (computed for this answer)."})
    history = fields.List(fields.Nested(HistorySchema))


class LeadScoreItemSchema(Schema):
    lead_id = fields.Integer()
    name = fields.String()
    status = fields.String()
    score = fields.Float()
    grade = fields.String()
    probability = fields.Float(allow_none=True)
    computed_at = fields.DateTime()


class LeadScorePageSchema(Schema):
    items = fields.List(fields.Nested(LeadScoreItemSchema))
    next_cursor = fields.String(allow_none=True)


class ListArgs(PageArgs):
    min_score = fields.Float(validate=validate.Range(min=0, max=100))
    max_score = fields.Float(validate=validate.Range(min=0, max=100))
    grade = fields.List(fields.String(validate=validate.OneOf("ABCD")), metadata={"description": "Repeat for several."})
    sort = fields.String(load_default="-score", validate=validate.OneOf(("score", "-score", "computed_at", "-computed_at")))


class RecomputeSchema(Schema):
    lead_ids = fields.List(fields.Integer(validate=validate.Range(min=1)), validate=validate.Length(min=1, max=10000), metadata={"description": "Leads to rescore; omit for all the tenant's leads."})


class RecomputeResultSchema(Schema):
    scored = fields.Integer()


class ModelSchema(Schema):
    trained = fields.Boolean(metadata={"description": "Whether a model is in use (false: the rules alone)."})
    trained_at = fields.DateTime(allow_none=True)
    examples = fields.Integer()
    positives = fields.Integer()
    auc = fields.Float(allow_none=True, metadata={"description": "ROC AUC on held-out examples (0.5 is chance)."})
    brier = fields.Float(allow_none=True, metadata={"description": "Brier score on held-out examples (lower is better calibrated)."})
    message = fields.String()
    min_training_examples = fields.Integer()


def lead_or_404(lead_id: int) -> Lead:
    lead = sdk.visible(Lead.select().where(Lead.id == lead_id), Lead).first()
    if lead is None:
        abort(404, message=f"no lead {lead_id}")
    return lead


def detail(lead: Lead) -> dict[str, Any]:
    """A lead's score with factors, prediction and history (computed, unstored, if the
    lead has not been scored yet)."""
    row = LeadScore.get_or_none(LeadScore.lead == lead.id)
    if row is None:
        result = engine.compute(g.tenant, [lead.id])[lead.id]
        body = {**result.__dict__, "computed_at": None}
    else:
        body = {k: getattr(row, k) for k in ("score", "rule_score", "grade", "components", "factors", "probability", "top_features", "computed_at")}
        body["factors"] = bulk.explain(row.factors)  # compact factors: reasons written out now
        body["components"] = bulk.components_of(row.components, body["factors"])
        body["top_features"] = bulk.top_features_of(row.top_features)
    history = list(ScoreHistory.select().where(ScoreHistory.lead == lead.id).order_by(ScoreHistory.at.desc(), ScoreHistory.id.desc()).limit(HISTORY_POINTS))
    body.update(lead_id=lead.id, name=lead.name, status=lead.status, history=list(reversed(history)))
    return body


def model_info(tenant: Any) -> dict[str, Any]:
    row = ScoringModel.get_or_none()
    minimum = engine.effective_settings(tenant)["min_training_examples"]
    if row is None:
        return {"trained": False, "trained_at": None, "examples": 0, "positives": 0, "auc": None, "brier": None, "message": "Not trained yet: the nightly job trains it, or train it now.", "min_training_examples": minimum}
    return {"trained": bool(row.params), "trained_at": row.trained_at, "examples": row.examples, "positives": row.positives, "auc": row.auc, "brier": row.brier, "message": row.message, "min_training_examples": minimum}


@blp.route("/leads/<int:lead_id>")
class LeadScoreDetail(MethodView):
    @blp.response(200, LeadScoreSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, lead_id):
        """A lead's score, grade, factors with reasons, predicted probability and history"""
        return detail(lead_or_404(lead_id))


@blp.route("/leads")
class LeadScores(MethodView):
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, LeadScorePageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """Scored leads, sorted and filtered by score or grade"""
        if "min_score" in args and "max_score" in args and args["min_score"] > args["max_score"]:
            abort(422, errors={"query": {"min_score": ["must not be above max_score"]}})
        query = LeadScore.select(LeadScore, Lead.id, Lead.name, Lead.status).join(Lead, on=(LeadScore.lead == Lead.id))
        query = sdk.visible(query, Lead)
        if "min_score" in args:
            query = query.where(LeadScore.score >= args["min_score"])
        if "max_score" in args:
            query = query.where(LeadScore.score <= args["max_score"])
        if args.get("grade"):
            query = query.where(LeadScore.grade.in_(args["grade"]))
        rows, cursor = sdk.keyset_page(query, LeadScore, args["sort"], args["limit"], args["cursor"])
        items = [
            {"lead_id": r.lead_id, "name": r.lead.name, "status": r.lead.status, "score": r.score, "grade": r.grade, "probability": r.probability, "computed_at": r.computed_at}
            for r in rows
        ]
        return {"items": items, "next_cursor": cursor}


@blp.route("/recompute")
class Recompute(MethodView):
    @blp.arguments(RecomputeSchema)
    @blp.response(200, RecomputeResultSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("scoring:manage")
    def post(self, data):
        """Rescore some leads (``lead_ids``) or all of them, now"""
        ids = data.get("lead_ids")
        if ids is not None:
            found = {lid for (lid,) in Lead.select(Lead.id).where(Lead.id.in_(ids)).tuples()}
            missing = sorted(set(ids) - found)
            if missing:
                abort(422, errors={"json": {"lead_ids": [f"no lead(s) {', '.join(map(str, missing[:20]))}"]}})
        return {"scored": engine.rescore(g.tenant, ids)}


@blp.route("/model")
class ModelQuality(MethodView):
    @blp.response(200, ModelSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self):
        """The predictive model's state and held-out quality (AUC, Brier)"""
        return model_info(g.tenant)


@blp.route("/train")
class Train(MethodView):
    @blp.response(200, ModelSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("scoring:manage")
    def post(self):
        """Train the predictive model now, then rescore every lead"""
        predictive.train(g.tenant)
        engine.rescore(g.tenant)
        return model_info(g.tenant)
