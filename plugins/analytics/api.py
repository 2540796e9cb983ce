"""/api/v1/analytics/...: each metric with its definition, the records behind each of its
rows (drill-down) and the dashboard summary. Every operation needs ``analytics:read``.

The core's ``/api/v1/analytics/leads`` stays where it is (see docs/architecture.md);
this plugin adds its routes next to it under the same prefix.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate

from crm_plugins.analytics import filters, goals, metrics, snapshots, summary
from crm_plugins.analytics.models import Goal
from crmcore import sdk
from crmcore.sdk import require

blp = Blueprint("analytics_api", __name__, url_prefix="/analytics", description="Analytics: pipeline, funnel, win rate, deal size, sales cycle, leads and activities, with definitions and drill-down.")
PERMISSION = "analytics:read"
GOALS_PERMISSION = "analytics:goals"
SECURITY = [{"bearerAuth": []}]


class ColumnSchema(Schema):
    key = fields.String()
    label = fields.String()
    kind = fields.String(metadata={"description": "text, int, money, percent (a ratio: 0.25 is 25%), days, hours or decimal."})


class MetricSchema(Schema):
    name = fields.String()
    title = fields.String()
    definition = fields.String(metadata={"description": "What the figures count, in words (shown on the dashboard too)."})
    entity = fields.String(metadata={"description": "The kind of record behind a row: deal, lead or activity."})
    date_applies_to = fields.String(metadata={"description": "The timestamp the date range selects by."})
    filters = fields.List(fields.String(), metadata={"description": "Filters that apply (date, owner, pipeline, source, currency)."})
    columns = fields.List(fields.Nested(ColumnSchema))


class RowSchema(Schema):
    key = fields.String(metadata={"description": "The row's key for drill-down (`all` for the total row)."})
    label = fields.String()
    total = fields.Boolean()
    values = fields.Dict(keys=fields.String(), metadata={"description": "A value per column (null where there is nothing to divide by); amounts as strings."})
    cells = fields.List(fields.String(), metadata={"description": "The row as the page and the CSV export show it: the label, then each column."})


class MetricResultSchema(MetricSchema):
    time_zone = fields.String(metadata={"description": "The tenant's time zone, in which the date range's days are read."})
    currency = fields.String()
    header = fields.List(fields.String(), metadata={"description": "The table's header as the page and the CSV export show it."})
    empty = fields.Boolean(metadata={"description": "True when every figure is zero or none: nothing to count yet."})
    rows = fields.List(fields.Nested(RowSchema))


class MetricListSchema(Schema):
    items = fields.List(fields.Nested(MetricSchema))


class RecordArgs(filters.FilterArgs):
    key = fields.String(load_default="all", validate=validate.Length(min=1, max=100), metadata={"description": "The row's key (`all`: every record of the metric)."})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.String(load_default=None, metadata={"description": "`next_cursor` of the previous page."})


class RecordPageSchema(Schema):
    entity = fields.String(metadata={"description": "deal, lead or activity: the ids are of /api/v1/<entity>s."})
    ids = fields.List(fields.Integer())
    next_cursor = fields.String(allow_none=True)


class SummarySchema(Schema):
    figures = fields.List(fields.Dict(), metadata={"description": "Headline figures: name, label, value, text, metric (whose total row it comes from) and definition."})
    time_zone = fields.String()
    currency = fields.String()


@blp.route("/metrics")
class MetricList(MethodView):
    @blp.response(200, MetricListSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self):
        """The metrics with their definitions and columns"""
        return {"items": [metrics.describe(m) for m in metrics.METRICS.values()]}


@blp.route("/summary")
class Summary(MethodView):
    @blp.arguments(filters.FilterArgs, location="query")
    @blp.response(200, SummarySchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self, args):
        """Dashboard summary: the headline figures of every metric

        Open deals, pipeline and weighted value, win rate, average deal size, sales cycle,
        leads, lead conversion, response time and activities for the filters, each with
        its definition; the total rows of the metrics, so the same figures as their tables.
        """
        f = filters.build(args)
        return {"figures": summary.figures(f), "time_zone": f.time_zone, "currency": f.currency}


class SnapshotArgs(Schema):
    day = fields.Date(required=True, metadata={"description": "A day of the tenant's time zone."})
    pipeline_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**31 - 1))
    currency = fields.String(load_default=None, validate=validate.Regexp(r"^[A-Z]{3}$"), metadata={"description": "The tenant's default currency without one."})


class SnapshotRowSchema(Schema):
    stage_id = fields.Integer()
    label = fields.String()
    deals = fields.Integer()
    value = fields.Decimal(as_string=True)
    weighted = fields.Decimal(as_string=True)
    taken_at = fields.DateTime()


class SnapshotSchema(Schema):
    day = fields.Date()
    currency = fields.String()
    rows = fields.List(fields.Nested(SnapshotRowSchema))


@blp.route("/pipeline-snapshots")
class PipelineSnapshots(MethodView):
    @blp.arguments(SnapshotArgs, location="query")
    @blp.response(200, SnapshotSchema)
    @blp.alt_response(404, description="No snapshot was taken that day.")
    @blp.alt_response(403, description="An agent restricted to their own records (snapshots are tenant-wide).")
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self, args):
        """The open pipeline as it was on a day

        The nightly snapshot (job `analytics:snapshot`, taken shortly after the tenant's
        local midnight): open deals per stage of each pipeline, with their value and
        weighted value, in one currency. 404 when no snapshot was taken that day.
        """
        if sdk.current_role() == "agent" and sdk.settings(sdk.current_tenant(), "core").get("agents_see_own_only"):
            abort(403, message="Snapshots are figures of the whole tenant; agents who see only their own records cannot read them.")
        currency = args.get("currency") or filters.build({}).currency
        rows = snapshots.rows_of(args["day"], currency, args.get("pipeline_id"))
        if not rows:
            abort(404, message=f"No pipeline snapshot for {args['day'].isoformat()} in {currency}.")
        return {"day": args["day"], "currency": currency, "rows": rows}


class GoalSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer(allow_none=True, metadata={"description": "The rep; null for a team's or everyone's goal."})
    team_id = fields.Integer(allow_none=True, metadata={"description": "The team (its members' records); null for a rep's or everyone's goal."})
    who = fields.String(metadata={"description": "The rep's name, \"Team <name>\" or \"Everyone\"."})
    kind = fields.String(metadata={"description": "revenue_won, deals_won or activities."})
    currency = fields.String(allow_none=True)
    target = fields.Decimal(as_string=True)
    first_day = fields.Date()
    last_day = fields.Date()
    actual = fields.Raw(metadata={"description": "Revenue won (a decimal string), deals won or activities in the period so far."})
    attainment = fields.Float(metadata={"description": "actual ÷ target."})
    elapsed = fields.Float(metadata={"description": "Share of the period that has passed (0-1)."})
    pacing = fields.String(metadata={"description": "met, on track (attainment ≥ elapsed), behind, missed or upcoming."})


class GoalListSchema(Schema):
    items = fields.List(fields.Nested(GoalSchema))


def _restricted() -> bool:
    return sdk.current_role() == "agent" and bool(sdk.settings(sdk.current_tenant(), "core").get("agents_see_own_only"))


@blp.route("/goals")
class Goals(MethodView):
    @blp.response(200, GoalListSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self):
        """Goals with attainment and pacing

        Every goal (newest period first; an agent restricted to their own records sees
        theirs and the team's) with what was achieved in its period so far, attainment
        (actual ÷ target) and pacing against the share of the period that has passed.
        Two queries whatever the number of goals.
        """
        return {"items": goals.progress(goals.visible_goals(sdk.current_user_id(), _restricted()))}

    @blp.arguments(goals.GoalInput)
    @blp.response(201, GoalSchema)
    @blp.doc(security=SECURITY)
    @require(GOALS_PERMISSION)
    def post(self, data):
        """Set a goal for a rep, a team or everyone

        `revenue_won` (value of deals won in the period, in one currency), `deals_won` or
        `activities`, over a period of days in the tenant's time zone.
        """
        try:
            goal = goals.create(data)
        except ValidationError as exc:
            abort(422, errors={"json": exc.messages})
        return goals.progress([goal])[0]


@blp.route("/goals/<int:goal_id>")
class GoalItem(MethodView):
    @blp.response(204)
    @blp.doc(security=SECURITY)
    @require(GOALS_PERMISSION)
    def delete(self, goal_id):
        """Delete a goal"""
        if not Goal.delete().where(Goal.id == goal_id).execute():
            abort(404, message="No such goal.")


def _metric_view(metric: Any) -> type[MethodView]:
    class MetricView(MethodView):
        @blp.arguments(filters.FilterArgs, location="query")
        @blp.response(200, MetricResultSchema)
        @blp.doc(security=SECURITY, summary=metric.title, description=metric.definition)
        @require(PERMISSION)
        def get(self, args):
            return metrics.result(metric, filters.build(args))

    class MetricRecords(MethodView):
        @blp.arguments(RecordArgs, location="query")
        @blp.response(200, RecordPageSchema)
        @blp.doc(security=SECURITY, summary=f"{metric.title}: the records behind a row", description=f"The ids of the {metric.entity}s a row of this metric counts, a page at a time, in id order.")
        @require(PERMISSION)
        def get(self, args):
            after = None
            if args.get("cursor"):
                decoded = sdk.decode_cursor(args["cursor"])
                if not (isinstance(decoded, list) and len(decoded) == 1 and isinstance(decoded[0], int)):
                    abort(422, errors={"query": {"cursor": ["Not a cursor of this list."]}})
                after = decoded[0]
            try:
                ids, last = metrics.record_ids(metric, filters.build(args), args["key"], args["limit"], after)
            except ValueError:
                abort(422, errors={"query": {"key": ["Not a row of this metric."]}})
            return {"entity": metric.entity, "ids": ids, "next_cursor": sdk.encode_cursor([last]) if last is not None else None}

    MetricView.__name__ = f"Metric_{metric.name.replace('-', '_')}"
    MetricRecords.__name__ = f"MetricRecords_{metric.name.replace('-', '_')}"
    return MetricView, MetricRecords


for _metric in metrics.METRICS.values():
    _view, _records = _metric_view(_metric)
    blp.route(f"/{_metric.name}", endpoint=f"metric_{_metric.name}")(_view)
    blp.route(f"/{_metric.name}/records", endpoint=f"records_{_metric.name}")(_records)
