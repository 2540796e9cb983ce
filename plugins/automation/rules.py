"""Rules: the catalogue of triggers and actions a tenant has, validation with the path of
each error (``steps[2].params.days``), saving as a new version, and the dry run."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from crm_plugins.automation import conditions, time_triggers
from crm_plugins.automation.actions import MODELS, PROTECTED, display_name
from crm_plugins.automation.contrib import AutomationAction, AutomationTrigger
from crm_plugins.automation.field_paths import extra_fields, extra_values
from crm_plugins.automation.models import RULE_STATUSES, AutomationRule, AutomationRuleVersion
from crmcore import sdk
from crmcore.sdk import Invalid, Stage, User, atomic, tag_names, utcnow

ACTIONS_HOOK = "crm_automation_actions"
TRIGGERS_HOOK = "crm_automation_triggers"
MAX_STEPS = 50
#: triggers that cannot be exit conditions (a record just created has no runs under way)
EXIT_NEVER = {"record_created"}


def triggers(tenant: Any) -> dict[str, AutomationTrigger]:
    found: dict[str, AutomationTrigger] = {}
    for _plugin, items in sdk.call_hook(tenant, TRIGGERS_HOOK, tenant=tenant):
        for item in items or []:
            if isinstance(item, AutomationTrigger):
                found.setdefault(item.name, item)
    return found


def actions(tenant: Any) -> dict[str, AutomationAction]:
    found: dict[str, AutomationAction] = {}
    for _plugin, items in sdk.call_hook(tenant, ACTIONS_HOOK, tenant=tenant):
        for item in items or []:
            if isinstance(item, AutomationAction):
                found.setdefault(item.name, item)
    return found


def load_params(action: AutomationAction, params: Any) -> dict[str, Any]:
    """The step's params through the action's schema (raises ValidationError)."""
    if action.params is None:
        return dict(params or {})
    return action.params().load(params or {})


def _flatten(messages: Any, prefix: str, out: dict[str, list[str]]) -> None:
    if isinstance(messages, dict):
        for key, value in messages.items():
            _flatten(value, f"{prefix}.{key}" if key != "_schema" else prefix, out)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out.setdefault(prefix, []).extend(messages)
    else:
        out.setdefault(prefix, []).append(str(messages))


def validate(tenant: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The rule's definition, cleaned; raises :class:`Invalid` with errors by path."""
    errors: dict[str, list[str]] = {}
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors["name"] = ["A name of 1 to 200 characters."]
    entity = data.get("entity")
    if entity not in MODELS:
        errors["entity"] = [f"One of {', '.join(MODELS)}."]
        raise Invalid(errors)
    fields = conditions.record_fields(MODELS[entity])
    trigger, known = data.get("trigger"), triggers(tenant)
    if not isinstance(trigger, dict) or trigger.get("type") not in known:
        errors["trigger.type"] = [f"One of {', '.join(known)}."]
    else:
        spec = known[trigger["type"]]
        if entity not in spec.entities:
            errors["trigger.type"] = [f"{spec.label!r} is about {', '.join(spec.entities)} records, not {entity}."]
        options = trigger.get("options") or {}
        if not isinstance(options, dict):
            errors["trigger.options"] = ["An object."]
        else:
            for key in set(options) - set(spec.options):
                errors[f"trigger.options.{key}"] = [f"Unknown option; this trigger has: {', '.join(spec.options) or 'none'}."]
            if trigger["type"] == "record_updated" and options.get("field") and options["field"] not in fields:
                errors["trigger.options.field"] = [f"No field {options['field']!r} on {entity} records."]
            errors.update(time_triggers.check_options(trigger["type"], entity, options, sdk.settings(tenant, "automation")["timezone"]))
    errors.update(conditions.validate(data.get("conditions") or {}, fields + extra_fields(tenant, entity)))
    exit_on = data.get("exit_on") or []
    if not isinstance(exit_on, list) or len(exit_on) > 10:
        errors["exit_on"] = ["A list of at most 10 trigger names."]
        exit_on = []
    exits = [n for n, t in known.items() if t.signal and n not in EXIT_NEVER]
    for i, exit_name in enumerate(exit_on):
        if exit_name not in exits:
            errors[f"exit_on[{i}]"] = ["One of " + ", ".join(exits) + "."]
    steps, cleaned_steps, known_actions = data.get("steps"), [], actions(tenant)
    if not isinstance(steps, list) or not steps or len(steps) > MAX_STEPS:
        errors["steps"] = [f"1 to {MAX_STEPS} steps."]
        steps = []
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        if not isinstance(step, dict) or step.get("action") not in known_actions:
            errors[f"{where}.action"] = [f"One of {', '.join(known_actions)}."]
            continue
        action = known_actions[step["action"]]
        if action.entities and entity not in action.entities:
            errors[f"{where}.action"] = [f"{action.label!r} applies to {', '.join(action.entities)} records."]
            continue
        try:
            params = load_params(action, step.get("params"))
        except ValidationError as exc:
            _flatten(exc.messages, f"{where}.params", errors)
            continue
        errors.update(_check_references(where, step["action"], params, fields))
        cleaned_steps.append({"action": step["action"], "params": step.get("params") or {}})
    if errors:
        raise Invalid(errors)
    return {"name": name.strip(), "description": str(data.get("description") or ""), "entity": entity,
            "trigger": {"type": trigger["type"], "options": trigger.get("options") or {}},
            "conditions": data.get("conditions") or {}, "steps": cleaned_steps, "exit_on": sorted(set(exit_on))}


def _check_references(where: str, action: str, params: dict[str, Any], fields: list[str]) -> dict[str, list[str]]:
    """Users, stages and fields a step names must exist in this tenant (one query each)."""
    errors: dict[str, list[str]] = {}
    users = [u for u in params.get("user_ids") or [] if u is not None] + ([params["assignee_id"]] if params.get("assignee_id") else [])
    if users:
        found = {u.id for u in User.select(User.id).where(User.id.in_(users) & (User.active == True))}  # noqa: E712
        missing = sorted(set(users) - found)
        if missing:
            key = "user_ids" if "user_ids" in params else "assignee_id"
            errors[f"{where}.params.{key}"] = [f"No active user {', '.join(map(str, missing))} in this tenant."]
    if action in ("move_stage", "create_deal") and params.get("stage_id") and not Stage.select().where(Stage.id == params["stage_id"]).exists():
        errors[f"{where}.params.stage_id"] = ["No such stage in this tenant."]
    if action == "update_field" and (params["field"] not in fields or params["field"] in PROTECTED):
        errors[f"{where}.params.field"] = ["Not a field a step may set: " + ", ".join(f for f in fields if f not in PROTECTED) + "."]
    return errors


def save(tenant: Any, data: dict[str, Any], rule: AutomationRule | None = None) -> AutomationRule:
    """Create a rule (draft unless ``status`` says) or store a new version of one. Runs
    under way keep the version they started on."""
    definition = validate(tenant, data)
    status = data.get("status", rule.status if rule else "draft")
    if status not in RULE_STATUSES:
        raise Invalid({"status": [f"One of {', '.join(RULE_STATUSES)}."]})
    with atomic():
        values = dict(definition, trigger_type=definition["trigger"]["type"], status=status, updated_at=utcnow())
        if rule is None:
            limit = sdk.settings(tenant, "automation")["max_rules"]
            if AutomationRule.select().count() >= limit:
                raise Invalid({"name": [f"This tenant has its {limit} rules already."]})
            rule = AutomationRule.create(**values, version=1)
        else:
            values["version"] = rule.version + 1
            values["paused_reason"] = None if status == "active" else rule.paused_reason
            AutomationRule.update(**values).where(AutomationRule.id == rule.id).execute()
            rule = AutomationRule.get_by_id(rule.id)
        AutomationRuleVersion.create(rule=rule.id, version=rule.version, definition={k: definition[k] for k in ("entity", "trigger", "conditions", "steps", "exit_on")})
    return rule


def set_status(rule: AutomationRule, status: str, reason: str | None = None) -> AutomationRule:
    AutomationRule.update(status=status, paused_reason=reason, updated_at=utcnow()).where(AutomationRule.id == rule.id).execute()
    return AutomationRule.get_by_id(rule.id)


def describe_step(step: dict[str, Any], known: dict[str, AutomationAction]) -> str:
    action = known.get(step["action"])
    params = ", ".join(f"{k}={v!r}" for k, v in (step.get("params") or {}).items())
    return f"{action.label if action else step['action']}" + (f" ({params})" if params else "")


def dry_run(tenant: Any, rule: AutomationRule, limit: int) -> dict[str, Any]:
    """The rule against the ``limit`` most recent records of its entity: which match and
    what would be done. Nothing is done. Conditions on ``event.*`` facts count as met
    (there is no event in a dry run). A constant number of queries whatever the limit."""
    model = MODELS[rule.entity]
    records = list(model.select().order_by(model.id.desc()).limit(limit))
    fields = conditions.record_fields(model)
    tags = tag_names(rule.entity, [r.id for r in records]) if conditions.needs_tags(rule.conditions) else {}
    known = actions(tenant)
    planned = [describe_step(s, known) for s in rule.steps]
    extras = extra_values(rule.entity, records, rule.conditions) if conditions.needs_extra(rule.conditions) else {}
    out = []
    for record in records:
        values = conditions.values_of(record, fields, tags.get(record.id), {}) | extras.get(record.id, {})
        matched = conditions.evaluate(rule.conditions, values, assume_events=True)
        out.append({"record_id": record.id, "name": display_name(record), "matches": matched, "steps": planned if matched else []})
    return {"checked": len(records), "matched": sum(1 for r in out if r["matches"]), "records": out,
            "conditions": conditions.describe(rule.conditions)}
