"""The pages under /app/automation: the rule list (run and failure counts), the editor
(a form: trigger, condition rows, step rows; no JSON), the dry run and the run log."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from marshmallow import fields as mfields

from crm_plugins.automation import conditions, rules, runs
from crm_plugins.automation.actions import MODELS, PROTECTED
from crm_plugins.automation.api import run_counts
from crm_plugins.automation.field_paths import extra_fields
from crm_plugins.automation.models import AutomationRule, AutomationRun
from crm_plugins.automation.templates import TEMPLATES
from crmcore import sdk
from crmcore.sdk import Invalid

log = logging.getLogger("crm_plugins.automation")

bp = Blueprint("automation", __name__, url_prefix="/app/automation", template_folder="templates", static_folder="static", static_url_path="/static")
PAGE_SIZE = 100


@bp.before_request
def _managers_only() -> None:
    if sdk.current_user() is None or not sdk.has_permission("automation:read"):
        abort(403, "Only admins and managers can see automation rules.")
    if request.method == "POST" and not sdk.has_permission("automation:manage"):
        abort(403)


def _rule_or_404(rule_id: int) -> AutomationRule:
    rule = AutomationRule.get_or_none(AutomationRule.id == rule_id)
    if rule is None:
        abort(404)
    return rule


@bp.route("/")
def index():
    items = list(AutomationRule.select().order_by(AutomationRule.name, AutomationRule.id))
    return render_template("automation/index.html", rules=items, counts=run_counts([r.id for r in items]), templates=TEMPLATES,
                           describe=conditions.describe)


# --------------------------------------------------------------------------- the editor


def _param_kind(field: Any) -> str:
    if isinstance(field, mfields.Boolean):
        return "bool"
    if isinstance(field, mfields.List):
        return "ids"
    if isinstance(field, (mfields.Integer, mfields.Float)):
        return "number"
    return "text"


def param_choices(tenant: Any, known_actions: dict[str, Any]) -> dict[str, list[tuple[Any, str]]]:
    """param -> [(value, label)] the actions offer as pickers (a plugin's failure to list
    them leaves that param a plain input, logged, and the editor working)."""
    found: dict[str, list[tuple[Any, str]]] = {}
    for name, action in known_actions.items():
        if action.choices is None:
            continue
        try:
            offered = action.choices(tenant) or {}
        except Exception:  # noqa: BLE001 - another plugin's code: contain it
            log.exception("automation: the choices of action %s failed", name)
            continue
        for pname, items in offered.items():
            found.setdefault(pname, []).extend((value, str(label)) for value, label in items)
    return found


def _editor_context(values: dict[str, Any], errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    tenant = sdk.current_tenant()
    known_actions = rules.actions(tenant)
    params: dict[str, str] = {}
    by_action: dict[str, list[str]] = {}
    for name, action in known_actions.items():
        declared = action.params().fields if action.params else {}
        by_action[name] = list(declared)
        for pname, pfield in declared.items():
            params.setdefault(pname, _param_kind(pfield))
    known_triggers = rules.triggers(tenant)
    choices = param_choices(tenant, known_actions)
    options = sorted({o for t in known_triggers.values() for o in t.options})
    return {
        "values": values, "errors": errors or {}, "entities": list(MODELS),
        "fields_by_entity": {e: conditions.record_fields(m) + ["tags"] + extra_fields(tenant, e) for e, m in MODELS.items()},
        "settable": {e: [f for f in conditions.record_fields(m) if f not in PROTECTED] for e, m in MODELS.items()},
        "triggers": known_triggers, "option_names": options, "operators": conditions.OPS,
        "options_by_trigger": {name: list(t.options) for name, t in known_triggers.items()},
        "actions": known_actions, "params": params, "params_by_action": by_action, "choices": choices,
        "users": sdk.user_options(), "json": json,
    }


def _flat_conditions(tree: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(all|any, rows) of a tree the form can show (one group of comparisons)."""
    for key in ("all", "any"):
        if key in tree and all("field" in n for n in tree[key]):
            return key, tree[key]
    return "all", [tree] if tree and "field" in tree else []


def _values_of(rule: dict[str, Any]) -> dict[str, Any]:
    match, rows = _flat_conditions(rule.get("conditions") or {})
    return {"name": rule.get("name", ""), "description": rule.get("description", ""), "entity": rule.get("entity", "lead"),
            "trigger_type": (rule.get("trigger") or {}).get("type", "record_created"),
            "options": (rule.get("trigger") or {}).get("options") or {}, "match": match, "conditions": rows,
            "steps": rule.get("steps") or [], "complex": bool(rule.get("conditions")) and not rows, "exit_on": rule.get("exit_on") or []}


def _param_value(kind: str, raw: str) -> Any:
    raw = raw.strip()
    if kind == "bool":
        return raw == "yes"
    if kind == "ids":
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        return [int(p) if p.isdigit() else p for p in parts]
    if kind == "number":
        try:
            return float(raw) if "." in raw else int(raw)
        except ValueError:
            return raw
    return raw


def _condition_value(op: str, raw: str) -> Any:
    if op in conditions.LIST_VALUE:
        return [v.strip() for v in raw.split(",") if v.strip()]
    return raw


def _from_form(form: Any, keep_conditions: dict[str, Any] | None) -> dict[str, Any]:
    """The rule as the API takes it, from the editor's form."""
    tenant = sdk.current_tenant()
    trigger_type = form.get("trigger_type", "")
    spec = rules.triggers(tenant).get(trigger_type)
    options = {k: form.get(f"opt_{k}", "").strip() for k in (spec.options if spec else {})}
    options = {k: v for k, v in options.items() if v}
    rows = [{"field": f, "op": o, **({} if o in conditions.NO_VALUE else {"value": _condition_value(o, v)})}
            for f, o, v in zip(form.getlist("cond_field"), form.getlist("cond_op"), form.getlist("cond_value")) if f]
    tree = keep_conditions if keep_conditions is not None else ({form.get("match", "all"): rows} if rows else {})
    ctx = _editor_context({})
    steps = []
    names = form.getlist("step_action")
    for i, name in enumerate(names):
        if not name:
            continue
        params = {}
        for pname in ctx["params_by_action"].get(name, []):
            raw = form.getlist(f"p_{pname}")
            if i < len(raw) and raw[i].strip() != "":
                params[pname] = _param_value(ctx["params"][pname], raw[i])
        steps.append({"action": name, "params": params})
    return {"name": form.get("name", ""), "description": form.get("description", ""), "entity": form.get("entity", ""),
            "trigger": {"type": trigger_type, "options": options}, "conditions": tree, "steps": steps, "exit_on": form.getlist("exit_on")}


@bp.route("/new")
def new():
    template = next((t for t in TEMPLATES if t["key"] == request.args.get("template")), None)
    values = _values_of(template or {"entity": "lead", "trigger": {"type": "record_created"}, "steps": [{"action": "create_task", "params": {}}]})
    return render_template("automation/edit.html", rule=None, **_editor_context(values))


@bp.route("/<int:rule_id>/edit")
def edit(rule_id: int):
    rule = _rule_or_404(rule_id)
    return render_template("automation/edit.html", rule=rule, **_editor_context(_values_of(rule.__data__)))


@bp.route("/", methods=["POST"])
@bp.route("/<int:rule_id>/edit", methods=["POST"])
def save(rule_id: int | None = None):
    rule = _rule_or_404(rule_id) if rule_id else None
    keep = rule.conditions if rule is not None and request.form.get("complex") == "1" else None
    data = _from_form(request.form, keep)
    try:
        saved = rules.save(sdk.current_tenant(), data, rule)
    except Invalid as exc:
        values = _values_of(data)
        return render_template("automation/edit.html", rule=rule, **_editor_context(values, exc.errors)), 422
    flash(f"Rule “{saved.name}” saved (version {saved.version}).")
    return redirect(url_for(".show", rule_id=saved.id))


@bp.route("/<int:rule_id>")
def show(rule_id: int):
    """The rule, its dry run (when asked) and its run log."""
    rule = _rule_or_404(rule_id)
    tenant = sdk.current_tenant()
    status = request.args.get("status")
    query = AutomationRun.select().where(AutomationRun.rule == rule.id)
    if status:
        query = query.where(AutomationRun.status == status)
    log = list(query.order_by(AutomationRun.id.desc()).limit(PAGE_SIZE))
    dry = rules.dry_run(tenant, rule, sdk.settings(tenant, "automation")["dry_run_records"]) if request.args.get("dry_run") else None
    known = rules.actions(tenant)
    return render_template("automation/show.html", rule=rule, log=log, dry=dry, status=status, counts=run_counts([rule.id]).get(rule.id, (0, 0)),
                           steps=[rules.describe_step(s, known) for s in rule.steps], describe=conditions.describe)


@bp.route("/<int:rule_id>/status", methods=["POST"])
def set_status(rule_id: int):
    rule = _rule_or_404(rule_id)
    status = request.form.get("status")
    if status not in ("active", "paused", "draft"):
        abort(400)
    if status == "active":
        try:
            rules.validate(sdk.current_tenant(), dict(rule.__data__))
        except Invalid as exc:
            flash("This rule cannot be activated: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items()))
            return redirect(url_for(".show", rule_id=rule.id))
    rules.set_status(rule, status)
    flash(f"Rule “{rule.name}” is {status}.")
    return redirect(url_for(".show", rule_id=rule.id))


@bp.route("/<int:rule_id>/delete", methods=["POST"])
def delete(rule_id: int):
    rule = _rule_or_404(rule_id)
    rule.delete_instance()
    flash(f"Rule “{rule.name}” deleted.")
    return redirect(url_for(".index"))


@bp.route("/runs/<int:run_id>/retry", methods=["POST"])
def retry(run_id: int):
    run = AutomationRun.get_or_none(AutomationRun.id == run_id)
    if run is None:
        abort(404)
    try:
        runs.retry_failed(sdk.current_tenant(), run)
        flash(f"Run #{run.id} queued again from step {run.step + 1}.")
    except sdk.Conflict as exc:
        flash(str(exc))
    return redirect(url_for(".show", rule_id=run.rule_id))
