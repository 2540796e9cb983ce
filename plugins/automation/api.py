"""/api/v1/automation: rules (CRUD, activate, pause, dry run), runs (log, retry), and the
catalogue of triggers, actions and condition operators the editor offers."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate

from crm_plugins.automation import conditions, rules, runs, templates
from crm_plugins.automation.actions import MODELS
from crm_plugins.automation.field_paths import extra_fields
from crm_plugins.automation.models import RULE_STATUSES, RUN_STATUSES, AutomationRule, AutomationRun
from crmcore import sdk
from crmcore.sdk import PageArgs, keyset_page, require

blp = Blueprint("automation_api", __name__, url_prefix="/automation", description="Automation rules, their runs and dry runs.")
READ, MANAGE = "automation:read", "automation:manage"
SECURITY = [{"bearerAuth": []}]


class RuleInput(Schema):
    """What a client sends; every field is checked by the rule validation (a 422 names the
    path of each bad part), after the rule itself is found (an unknown rule is a 404)."""

    name = fields.String(load_default="")
    description = fields.String(load_default="")
    entity = fields.String(load_default="", metadata={"description": "lead, contact, company or deal."})
    trigger = fields.Dict(load_default=dict, metadata={"description": '{"type": "record_updated", "options": {"field": "status", "to": "qualified"}}'})
    conditions = fields.Dict(load_default=dict, metadata={"description": 'A tree: {"all": [{"field": "status", "op": "eq", "value": "new"}, {"any": [...]}]}.'})
    steps = fields.List(fields.Dict(), load_default=list, metadata={"description": '[{"action": "create_task", "params": {"title": "Call {name}"}}, {"action": "wait", "params": {"days": 3}}]'})
    exit_on = fields.List(fields.String(), load_default=list, metadata={"description": 'Exit conditions: trigger names whose occurrence for a run\'s record stops the run, e.g. ["message_received", "email_unsubscribed"].'})
    status = fields.String(validate=validate.OneOf(RULE_STATUSES))


class RuleSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    entity = fields.String()
    trigger = fields.Dict()
    conditions = fields.Dict()
    steps = fields.List(fields.Dict())
    exit_on = fields.List(fields.String())
    status = fields.String()
    paused_reason = fields.String(allow_none=True, metadata={"description": "Why the plugin paused it (a trigger or action gone)."})
    version = fields.Integer(metadata={"description": "Each save is a new version; runs keep the one they started on."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    runs = fields.Integer(metadata={"description": "Runs in the log (all statuses)."})
    failed = fields.Integer(metadata={"description": "Failed runs in the log."})


class RuleListSchema(Schema):
    items = fields.List(fields.Nested(RuleSchema))


class RunSchema(Schema):
    id = fields.Integer()
    rule_id = fields.Integer()
    version = fields.Integer()
    entity = fields.String()
    record_id = fields.Integer()
    trigger = fields.String()
    status = fields.String(metadata={"description": ", ".join(RUN_STATUSES)})
    step = fields.Integer(metadata={"description": "Index of the next step to run."})
    wake_at = fields.DateTime(allow_none=True)
    chain = fields.List(fields.Integer(), metadata={"description": "Rule ids of the runs that caused this one."})
    depth = fields.Integer()
    guard = fields.String(allow_none=True, metadata={"description": "stopped by: depth or rate_limit (loop guards), exit (an exit condition), refused (a step refused for good)."})
    waiting_for = fields.String(allow_none=True, metadata={"description": "quiet or reply: a wait step that looks again when woken."})
    error = fields.String(allow_none=True)
    log = fields.List(fields.Dict())
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class RunPageSchema(Schema):
    items = fields.List(fields.Nested(RunSchema))
    next_cursor = fields.String(allow_none=True)


class RunArgs(PageArgs):
    rule_id = fields.Integer()
    status = fields.String(validate=validate.OneOf(RUN_STATUSES))
    entity = fields.String()
    record_id = fields.Integer()


class DryRunArgs(Schema):
    limit = fields.Integer(validate=validate.Range(min=1, max=200), metadata={"description": "Records to test (default: the setting dry_run_records)."})


class DryRunSchema(Schema):
    checked = fields.Integer()
    matched = fields.Integer()
    conditions = fields.String()
    records = fields.List(fields.Dict(), metadata={"description": "[{record_id, name, matches, steps: [what would be done]}]"})


def rule_or_404(rule_id: int) -> AutomationRule:
    rule = AutomationRule.get_or_none(AutomationRule.id == rule_id)
    if rule is None:
        abort(404, message="rule not found")
    return rule


def with_counts(items: list[AutomationRule]) -> list[dict[str, Any]]:
    counts = run_counts([r.id for r in items])
    return [dict(r.__data__, runs=counts.get(r.id, (0, 0))[0], failed=counts.get(r.id, (0, 0))[1]) for r in items]


def run_counts(rule_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(runs, failed) per rule, in one query."""
    from peewee import Case, fn

    if not rule_ids:
        return {}
    query = (AutomationRun.select(AutomationRun.rule, fn.COUNT(AutomationRun.id).alias("n"),
                                  fn.SUM(Case(None, [(AutomationRun.status == "failed", 1)], 0)).alias("f"))
             .where(AutomationRun.rule.in_(rule_ids)).group_by(AutomationRun.rule))
    return {row.rule_id: (row.n, int(row.f or 0)) for row in query}


@blp.route("/rules")
class Rules(MethodView):
    @blp.response(200, RuleListSchema)
    @blp.doc(security=SECURITY)
    @require(READ)
    def get(self):
        """List rules with their run and failure counts"""
        return {"items": with_counts(list(AutomationRule.select().order_by(AutomationRule.name, AutomationRule.id)))}

    @blp.arguments(RuleInput)
    @blp.response(201, RuleSchema)
    @blp.doc(security=SECURITY)
    @require(MANAGE)
    def post(self, data):
        """Create a rule (a draft unless `status` says); 422 names the path of each error"""
        return with_counts([rules.save(sdk.current_tenant(), data)])[0], 201


@blp.route("/rules/<int:rule_id>")
class RuleById(MethodView):
    @blp.response(200, RuleSchema)
    @blp.doc(security=SECURITY)
    @require(READ)
    def get(self, rule_id):
        """Get a rule"""
        return with_counts([rule_or_404(rule_id)])[0]

    @blp.arguments(RuleInput)
    @blp.response(200, RuleSchema)
    @blp.doc(security=SECURITY)
    @require(MANAGE)
    def put(self, data, rule_id):
        """Replace a rule's definition: a new version (runs under way finish on theirs)"""
        return with_counts([rules.save(sdk.current_tenant(), data, rule_or_404(rule_id))])[0]

    @blp.response(204)
    @blp.doc(security=SECURITY)
    @require(MANAGE)
    def delete(self, rule_id):
        """Delete a rule and its runs"""
        rule_or_404(rule_id).delete_instance()


def _status_op(status: str) -> Any:
    def view(rule_id: int) -> Any:
        rule = rule_or_404(rule_id)
        if status == "active":  # the definition must still be valid (fields, plugins, users)
            rules.validate(sdk.current_tenant(), dict(rule.__data__))
        return with_counts([rules.set_status(rule, status)])[0]

    return view


@blp.route("/rules/<int:rule_id>/activate", methods=["POST"])
@blp.response(200, RuleSchema)
@blp.doc(security=SECURITY)
@require(MANAGE)
def activate(rule_id):
    """Activate a rule (validated again first)"""
    return _status_op("active")(rule_id)


@blp.route("/rules/<int:rule_id>/pause", methods=["POST"])
@blp.response(200, RuleSchema)
@blp.doc(security=SECURITY)
@require(MANAGE)
def pause(rule_id):
    """Pause a rule (runs under way go on; no new ones start)"""
    return _status_op("paused")(rule_id)


@blp.route("/rules/<int:rule_id>/dry-run", methods=["POST"])
@blp.arguments(DryRunArgs)
@blp.response(200, DryRunSchema)
@blp.doc(security=SECURITY)
@require(READ)
def dry_run(args, rule_id):
    """Test a rule against the most recent records of its entity: nothing is done"""
    tenant = sdk.current_tenant()
    return rules.dry_run(tenant, rule_or_404(rule_id), args.get("limit") or sdk.settings(tenant, "automation")["dry_run_records"])


@blp.route("/runs")
@blp.arguments(RunArgs, location="query")
@blp.response(200, RunPageSchema)
@blp.doc(security=SECURITY)
@require(READ)
def list_runs(args):
    """The run log, newest first"""
    query = AutomationRun.select()
    for key in ("status", "entity", "record_id"):
        if args.get(key) is not None:
            query = query.where(getattr(AutomationRun, key) == args[key])
    if args.get("rule_id") is not None:
        query = query.where(AutomationRun.rule == args["rule_id"])
    rows, next_cursor = keyset_page(query, AutomationRun, "-id", args["limit"], args.get("cursor"))
    return {"items": rows, "next_cursor": next_cursor}


@blp.route("/runs/<int:run_id>")
@blp.response(200, RunSchema)
@blp.doc(security=SECURITY)
@require(READ)
def get_run(run_id):
    """One run with its log"""
    run = AutomationRun.get_or_none(AutomationRun.id == run_id)
    if run is None:
        abort(404, message="run not found")
    return run


@blp.route("/runs/<int:run_id>/retry", methods=["POST"])
@blp.response(200, RunSchema)
@blp.alt_response(409, description="The run has not failed.")
@blp.doc(security=SECURITY)
@require(MANAGE)
def retry_run(run_id):
    """Retry a failed run from its failed step"""
    return runs.retry_failed(sdk.current_tenant(), _run_or_404(run_id))


def _run_or_404(run_id: int) -> AutomationRun:
    run = AutomationRun.get_or_none(AutomationRun.id == run_id)
    if run is None:
        abort(404, message="run not found")
    return run


@blp.route("/catalogue")
@blp.response(200, Schema.from_dict({"triggers": fields.List(fields.Dict()), "actions": fields.List(fields.Dict()), "operators": fields.Dict(), "templates": fields.List(fields.Dict()),
                                      "fields": fields.Dict(metadata={"description": "Record kind -> the fields conditions may name (columns, tags, related records' fields, custom fields, score)."})},
                                     name="AutomationCatalogue"))
@blp.doc(security=SECURITY)
@require(READ)
def catalogue():
    """Triggers, actions and condition operators this tenant can use, and the templates"""
    tenant = sdk.current_tenant()
    return {
        "triggers": [{"type": t.name, "label": t.label, "entities": list(t.entities), "options": t.options} for t in rules.triggers(tenant).values()],
        "actions": [{"action": a.name, "label": a.label, "entities": list(a.entities), "description": a.description,
                     "params": sorted(a.params().fields) if a.params else []} for a in rules.actions(tenant).values()],
        "operators": conditions.OPS,
        "templates": templates.TEMPLATES,
        "fields": {e: conditions.record_fields(m) + ["tags"] + extra_fields(tenant, e) for e, m in MODELS.items()},
    }
