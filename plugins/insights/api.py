"""/api/v1/insights: sentiment trends, deal risks, next best actions, customer health,
alerts. Reading needs ``insights:read``; recording a decision ``insights:act``; asking
for a recompute ``insights:manage``."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate

from crm_plugins.insights import actions, conversations, health, interactions, textgen
from crm_plugins.insights.models import CustomerHealth, DealRisk, GeneratedTextRecord, InsightAlert
from crmcore import sdk
from crmcore.sdk import Company, Contact, Deal, enqueue, require

blp = Blueprint("insights_api", __name__, url_prefix="/insights", description="AI insights: sentiment, deal risk, next best actions, customer health.")

RECORD_ENTITIES = ("lead", "contact", "company", "deal")


class InsightsFactorSchema(Schema):
    key = fields.String()
    label = fields.String()
    reason = fields.String()
    remedy = fields.String()
    points = fields.Float(allow_none=True)
    max = fields.Float()


class InsightsRiskSchema(Schema):
    deal_id = fields.Integer()
    title = fields.String()
    level = fields.String(metadata={"description": "low, medium or high"})
    points = fields.Float()
    factors = fields.List(fields.Nested(InsightsFactorSchema))
    lower_it = fields.List(fields.String(), metadata={"description": "What would lower the level."})
    computed_at = fields.DateTime()


class InsightsRiskListArgs(Schema):
    level = fields.String(validate=validate.OneOf(("low", "medium", "high")))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class InsightsSentimentPointSchema(Schema):
    entity = fields.String()
    record_id = fields.Integer()
    score = fields.Float(allow_none=True)
    status = fields.String(metadata={"description": "scored, not_scored (not English) or empty"})
    note = fields.String()
    occurred_at = fields.DateTime()


class InsightsTrendSchema(Schema):
    recent_average = fields.Float(allow_none=True)
    previous_average = fields.Float(allow_none=True)
    direction = fields.String(metadata={"description": "improving, steady, declining or unknown"})
    scored = fields.Integer()
    not_scored = fields.Integer()
    window_days = fields.Float()
    latest = fields.List(fields.Nested(InsightsSentimentPointSchema))


class InsightsActionSchema(Schema):
    entity = fields.String()
    record_id = fields.Integer()
    key = fields.String()
    kind = fields.String()
    title = fields.String()
    reason = fields.String()
    rank = fields.Float()


class InsightsActionArgs(Schema):
    entity = fields.String(validate=validate.OneOf(("lead", "deal")))
    record_id = fields.Integer(validate=validate.Range(min=1))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))


class InsightsDecisionInput(Schema):
    entity = fields.String(required=True, validate=validate.OneOf(("lead", "deal")))
    record_id = fields.Integer(required=True, validate=validate.Range(min=1))
    action = fields.String(required=True, validate=validate.Length(min=1, max=40))
    decision = fields.String(required=True, validate=validate.OneOf(actions.DECISIONS), metadata={"description": "done, dismissed, or task (creates the task)"})
    title = fields.String(load_default="", validate=validate.Length(max=300))


class InsightsDecisionSchema(Schema):
    entity = fields.String()
    record_id = fields.Integer()
    action = fields.String()
    decision = fields.String()
    task_id = fields.Integer(allow_none=True)
    decided_at = fields.DateTime()


class InsightsHealthSchema(Schema):
    entity = fields.String()
    record_id = fields.Integer()
    name = fields.String()
    score = fields.Integer()
    band = fields.String(metadata={"description": "green 75-100, yellow 50-74, red 0-49"})
    factors = fields.List(fields.Nested(InsightsFactorSchema))
    computed_at = fields.DateTime()


class InsightsHealthArgs(Schema):
    band = fields.String(validate=validate.OneOf(("green", "yellow", "red")))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class InsightsAlertSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    entity = fields.String()
    record_id = fields.Integer()
    title = fields.String()
    text = fields.String()
    created_at = fields.DateTime()


class InsightsRecomputeInput(Schema):
    what = fields.String(required=True, validate=validate.OneOf(("risk", "health", "sentiment")))


class InsightsQueuedSchema(Schema):
    queued = fields.String()


def risk_dict(risk: DealRisk, title: str) -> dict[str, Any]:
    from crm_plugins.insights.risk import explain

    settings = sdk.settings(g.tenant, "insights")
    return {"deal_id": risk.deal_id, "title": title, "level": risk.level, "points": risk.points, "factors": risk.factors, "lower_it": explain(risk.points, risk.factors, settings), "computed_at": risk.computed_at}


def _visible_deals() -> Any:
    return sdk.visible(Deal.select(), Deal)


@blp.route("/risks")
class Risks(MethodView):
    @blp.arguments(InsightsRiskListArgs, location="query")
    @blp.response(200, InsightsRiskSchema(many=True))
    @require("insights:read")
    def get(self, args):
        """Open deals by risk, highest first"""
        query = _visible_deals().select(Deal.title, DealRisk).join(DealRisk, on=(DealRisk.deal == Deal.id)).order_by(DealRisk.points.desc(), Deal.id)
        if args.get("level"):
            query = query.where(DealRisk.level == args["level"])
        return [risk_dict(row.dealrisk, row.title) for row in query.limit(args["limit"])]


@blp.route("/deals/<int:deal_id>/risk")
class OneRisk(MethodView):
    @blp.response(200, InsightsRiskSchema)
    @require("insights:read")
    def get(self, deal_id):
        """The risk of one open deal, its reasons and what would lower it"""
        deal = sdk.visible_deal(deal_id)
        risk = DealRisk.get_or_none(DealRisk.deal == deal.id)
        if risk is None:
            abort(404, message="no risk assessed for this deal (closed, or not assessed yet)")
        return risk_dict(risk, deal.title)


@blp.route("/sentiment/<string:entity>/<int:record_id>")
class Sentiment(MethodView):
    @blp.response(200, InsightsTrendSchema)
    @require("insights:read")
    def get(self, entity, record_id):
        """Sentiment trend of a lead, contact, company or deal"""
        if entity not in RECORD_ENTITIES:
            abort(404, message="unknown entity")
        _visible(entity, record_id)
        return interactions.trend(entity, record_id)


class InsightsConversationSchema(Schema):
    conversation_id = fields.Integer()
    channel = fields.String(metadata={"description": "email, sms ... (the channels plugin's)"})
    subject = fields.String()
    average = fields.Float(allow_none=True, metadata={"description": "of every scored inbound message"})
    recent_average = fields.Float(allow_none=True)
    previous_average = fields.Float(allow_none=True)
    latest_score = fields.Float(allow_none=True)
    direction = fields.String(metadata={"description": "improving, steady, declining or unknown"})
    scored = fields.Integer()
    not_scored = fields.Integer()
    last_at = fields.DateTime(allow_none=True)
    window_days = fields.Float()


@blp.route("/sentiment/<string:entity>/<int:record_id>/conversations")
class ConversationSentiment(MethodView):
    @blp.response(200, InsightsConversationSchema(many=True))
    @require("insights:read")
    def get(self, entity, record_id):
        """Sentiment of a lead's, contact's or deal's conversations (email, SMS ...), newest first"""
        if entity not in conversations.LINKED_ENTITIES:
            abort(404, message="unknown entity (lead, contact or deal)")
        _visible(entity, record_id)
        return conversations.of_record(g.tenant, entity, record_id)


def _visible(entity: str, record_id: int) -> None:
    if entity == "deal":
        sdk.visible_deal(record_id)
    elif entity == "lead":
        sdk.visible_lead(record_id)
    else:
        model = Contact if entity == "contact" else Company
        if not sdk.visible(model.select(model.id), model).where(model.id == record_id).exists():
            abort(404, message=f"{entity} not found")


@blp.route("/actions")
class Actions(MethodView):
    @blp.arguments(InsightsActionArgs, location="query")
    @blp.response(200, InsightsActionSchema(many=True))
    @require("insights:read")
    def get(self, args):
        """Next best actions: of one lead or deal, or the tenant's most pressing"""
        if args.get("entity") and args.get("record_id"):
            _visible(args["entity"], args["record_id"])
            found = actions.for_record(args["entity"], args["record_id"])
        else:
            found = actions.due(args["limit"], deal_query=_visible_deals(), lead_query=sdk.visible(sdk.Lead.select(), sdk.Lead))
        return [a.as_dict() for a in found[: args["limit"]]]

    @blp.arguments(InsightsDecisionInput)
    @blp.response(201, InsightsDecisionSchema)
    @require("insights:act")
    def post(self, data):
        """Record done / dismissed for a suggested action, or create its task"""
        _visible(data["entity"], data["record_id"])
        return actions.decide(data["entity"], data["record_id"], data["action"], data["decision"], title=data["title"], user_id=sdk.current_user_id())


@blp.route("/health")
class Health(MethodView):
    @blp.arguments(InsightsHealthArgs, location="query")
    @blp.response(200, InsightsHealthSchema(many=True))
    @require("insights:read")
    def get(self, args):
        """Customers' health, lowest first"""
        query = CustomerHealth.select().order_by(CustomerHealth.score, CustomerHealth.id)
        if args.get("band"):
            query = query.where(CustomerHealth.band == args["band"])
        rows = list(query.limit(args["limit"]))
        names = {e: sdk.display_names(m, [r.record_id for r in rows if r.entity == e]) for e, m in (("contact", Contact), ("company", Company))}
        return [{"entity": r.entity, "record_id": r.record_id, "name": names[r.entity].get(r.record_id, ""), "score": r.score, "band": r.band, "factors": r.factors, "computed_at": r.computed_at} for r in rows]


@blp.route("/health/<string:entity>/<int:record_id>/history")
class HealthHistoryView(MethodView):
    @blp.response(200, Schema.from_dict({"day": fields.Date(), "score": fields.Integer(), "band": fields.String()}, name="InsightsHealthDay")(many=True))
    @require("insights:read")
    def get(self, entity, record_id):
        """Daily health history of a contact or company (90 days)"""
        if entity not in health.ENTITIES:
            abort(404, message="unknown entity")
        _visible(entity, record_id)
        return health.history_of(entity, record_id)


@blp.route("/alerts")
class Alerts(MethodView):
    @blp.response(200, InsightsAlertSchema(many=True))
    @require("insights:read")
    def get(self):
        """The latest alerts (at-risk deals, declining health)"""
        return list(InsightAlert.select().order_by(InsightAlert.created_at.desc(), InsightAlert.id.desc()).limit(100))


@blp.route("/recompute")
class Recompute(MethodView):
    @blp.arguments(InsightsRecomputeInput)
    @blp.response(202, InsightsQueuedSchema)
    @require("insights:manage")
    def post(self, data):
        """Queue a recompute of risks, health, or the sentiment backfill"""
        kind = {"risk": "insights.risk", "health": "insights.health", "sentiment": "insights.backfill"}[data["what"]]
        task = enqueue(kind, {}, tenant=g.tenant)
        return {"queued": f"{kind} #{task.id}"}


class InsightsSummaryInput(Schema):
    entity = fields.String(required=True, validate=validate.OneOf(RECORD_ENTITIES))
    record_id = fields.Integer(required=True, validate=validate.Range(min=1))


class InsightsSummarySchema(Schema):
    id = fields.Integer()
    entity = fields.String()
    record_id = fields.Integer()
    purpose = fields.String(metadata={"description": "summary or reply"})
    conversation_id = fields.Integer(allow_none=True, metadata={"description": "a reply draft's conversation"})
    status = fields.String(metadata={"description": "queued, done or failed"})
    text = fields.String()
    source = fields.String(metadata={"description": "extractive, openai-compatible:<model>, or the answering plugin's"})
    error = fields.String()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


@blp.route("/summaries")
class Summaries(MethodView):
    @blp.arguments(InsightsSummaryInput)
    @blp.response(202, InsightsSummarySchema)
    @require("insights:act")
    def post(self, data):
        """Ask for a record's summary (generated by the worker; poll its id)"""
        _visible(data["entity"], data["record_id"])
        return textgen.request_summary(data["entity"], data["record_id"])


class InsightsReplyInput(Schema):
    entity = fields.String(required=True, validate=validate.OneOf(conversations.LINKED_ENTITIES))
    record_id = fields.Integer(required=True, validate=validate.Range(min=1))
    conversation_id = fields.Integer(required=True, validate=validate.Range(min=1))


@blp.route("/replies")
class Replies(MethodView):
    @blp.arguments(InsightsReplyInput)
    @blp.response(202, InsightsSummarySchema)
    @require("insights:act")
    def post(self, data):
        """Ask for a reply draft to one of a record's conversations (written by the worker; poll /summaries/<id>)"""
        _visible(data["entity"], data["record_id"])
        if data["conversation_id"] not in {c["conversation_id"] for c in conversations.of_record(g.tenant, data["entity"], data["record_id"])}:
            abort(404, message="no such conversation for this record")
        return textgen.request_reply(data["entity"], data["record_id"], data["conversation_id"])


@blp.route("/summaries/<int:summary_id>")
class OneSummary(MethodView):
    @blp.response(200, InsightsSummarySchema)
    @require("insights:read")
    def get(self, summary_id):
        """A requested summary: queued, done (with its text) or failed"""
        row = GeneratedTextRecord.get_or_none(GeneratedTextRecord.id == summary_id)
        if row is None:
            abort(404, message="no such summary")
        _visible(row.entity, row.record_id)
        return row
