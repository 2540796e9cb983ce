"""The built-in steps (this plugin's own ``crm_automation_actions``): create a task,
assign the owner round-robin, update a field, add or remove a tag, move a deal's stage,
notify users, and wait. Each runs inside the transaction that records its step done."""

from __future__ import annotations

import datetime as dt
from typing import Any

import peewee
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_plugins.automation.contrib import ActionCall, AutomationAction, StopRun
from crm_plugins.automation.models import AutomationCounter
from crmcore import sdk
from crmcore.sdk import (
    Company,
    Contact,
    Deal,
    Lead,
    Task,
    User,
    create_record,
    tag_names,
    update_record,
    utcnow,
)

MODELS = {"lead": Lead, "contact": Contact, "company": Company, "deal": Deal}
COLLECTIONS = {"lead": "leads", "contact": "contacts", "company": "companies", "deal": "deals"}
#: fields an update step may not set (identity, bookkeeping, links handled elsewhere)
PROTECTED = {"id", "created_at", "updated_at", "version", "custom", "tenant", "pipeline_id", "stage_id", "position"}


def display_name(record: Any) -> str:
    return str(getattr(record, "name", None) or getattr(record, "title", None) or f"#{record.id}")


def render(text: str, record: Any) -> str:
    """``{name}`` becomes the record's name: the only placeholder (no format(): a
    user's text must not reach into objects)."""
    return (text or "").replace("{name}", display_name(record))


def record_link(entity: str, record_id: int) -> str:
    return f"/app/{COLLECTIONS.get(entity, entity + 's')}/{record_id}"


# --------------------------------------------------------------------------- params


class CreateTaskParams(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=300), metadata={"description": "{name} is the record's name."})
    due_in_days = fields.Integer(load_default=1, validate=validate.Range(min=0, max=3650))
    assignee_id = fields.Integer(load_default=None, allow_none=True, metadata={"description": "Default: the record's owner."})


class AssignOwnerParams(Schema):
    user_ids = fields.List(fields.Integer(), required=True, validate=validate.Length(min=1, max=100), metadata={"description": "Round-robin among them."})
    only_if_unassigned = fields.Boolean(load_default=False)


class AssignLeastLoadedParams(Schema):
    user_ids = fields.List(fields.Integer(), required=True, validate=validate.Length(min=1, max=100),
                           metadata={"description": "The team: the one with the fewest open records of this kind gets it (ties: round-robin)."})
    only_if_unassigned = fields.Boolean(load_default=False)


class UpdateFieldParams(Schema):
    field = fields.String(required=True, validate=validate.Length(min=1, max=60))
    value = fields.Raw(required=True, allow_none=True)


class TagParams(Schema):
    tag = fields.String(required=True, validate=validate.Length(min=1, max=60))


class MoveStageParams(Schema):
    stage_id = fields.Integer(required=True)


class NotifyParams(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    text = fields.String(load_default="", validate=validate.Length(max=2000))
    to_owner = fields.Boolean(load_default=True)
    user_ids = fields.List(fields.Integer(), load_default=list, validate=validate.Length(max=100))

    @validates_schema
    def someone(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("to_owner") and not data.get("user_ids"):
            raise ValidationError("Notify the owner or some users.", "user_ids")


class WaitParams(Schema):
    days = fields.Integer(load_default=0, validate=validate.Range(min=0, max=365))
    hours = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1000))
    minutes = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100000))
    seconds = fields.Float(load_default=0, validate=validate.Range(min=0, max=100000))

    @validates_schema
    def positive(self, data: dict[str, Any], **_: Any) -> None:
        if not wait_delta(data).total_seconds() > 0:
            raise ValidationError("Wait at least a second.", "days")


class WaitNoActivityParams(WaitParams):
    """Days (hours, minutes, seconds) without activity on the record."""


class WaitForReplyParams(WaitParams):
    on_reply = fields.String(load_default="stop", validate=validate.OneOf(["stop", "continue"]),
                             metadata={"description": "stop: a reply ends the run; continue: go on with the next step at once."})


class CreateDealParams(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata={"description": "{name} is the record's name."})
    value = fields.Decimal(load_default=None, allow_none=True, places=2, as_string=True, validate=validate.Range(min=0))
    pipeline_id = fields.Integer(load_default=None, allow_none=True, metadata={"description": "Default: the default pipeline."})
    stage_id = fields.Integer(load_default=None, allow_none=True, metadata={"description": "Default: the pipeline's first stage."})


def wait_delta(params: dict[str, Any]) -> dt.timedelta:
    return dt.timedelta(days=params.get("days", 0), hours=params.get("hours", 0), minutes=params.get("minutes", 0), seconds=params.get("seconds", 0))


# --------------------------------------------------------------------------- runs


def create_task(call: ActionCall) -> str:
    p = call.params
    assignee = p.get("assignee_id") or getattr(call.record, "owner_id", None)
    task = create_record(Task, {"title": render(p["title"], call.record), call.entity: call.record.id, "assignee": assignee,
                                "due_at": utcnow() + dt.timedelta(days=p["due_in_days"])})
    return f"task #{task.id} created"


def assign_owner(call: ActionCall) -> str:
    p = call.params
    if p["only_if_unassigned"] and getattr(call.record, "owner_id", None):
        return "already assigned"
    AutomationCounter.insert(tenant=call.tenant.id, rule=call.rule_id, step=call.step, value=0).on_conflict_ignore().execute()
    position = (AutomationCounter.update(value=AutomationCounter.value + 1)
                .where((AutomationCounter.rule == call.rule_id) & (AutomationCounter.step == call.step))
                .returning(AutomationCounter.value).tuples().execute())
    users = p["user_ids"]
    user_id = users[(list(position)[0][0] - 1) % len(users)]
    update_record(call.record, {"owner": user_id})
    return f"owner set to user {user_id}"


def _open_records(entity: str) -> Any:
    """Which records of ``entity`` count as a user's open load: leads not converted or
    unqualified, deals not closed, every contact and company they own."""
    model = MODELS[entity]
    if entity == "lead":
        return model.status.not_in(["converted", "unqualified"])
    if entity == "deal":
        return model.closed_at.is_null()
    return peewee.SQL("1 = 1")


def assign_least_loaded(call: ActionCall) -> str:
    """The owner becomes the team member with the fewest open records of this kind (one
    grouped query); among the least loaded, the next after the one this step chose last
    (round-robin). The step's counter row is locked first, so two runs of the step at
    once choose one after the other."""
    p = call.params
    if p["only_if_unassigned"] and getattr(call.record, "owner_id", None):
        return "already assigned"
    model, team = MODELS[call.entity], list(dict.fromkeys(p["user_ids"]))
    AutomationCounter.insert(tenant=call.tenant.id, rule=call.rule_id, step=call.step, value=0).on_conflict_ignore().execute()
    last = list(AutomationCounter.update(value=AutomationCounter.value)
                .where((AutomationCounter.rule == call.rule_id) & (AutomationCounter.step == call.step))
                .returning(AutomationCounter.value).tuples().execute())[0][0]
    load = (User.select(User.id, peewee.fn.COUNT(model.id))
            .join(model, peewee.JOIN.LEFT_OUTER, on=((model.owner == User.id) & (model.id != call.record.id) & _open_records(call.entity)))
            .where(User.id.in_(team) & (User.active == True)).group_by(User.id).tuples())  # noqa: E712
    counts = dict(load)
    if not counts:
        raise StopRun("No active user in the team to assign.")
    fewest = min(counts.values())
    # round-robin among the least loaded: the first of them after the last one chosen
    order = [team[(last + i) % len(team)] for i in range(len(team))]
    user_id = next(u for u in order if counts.get(u) == fewest)
    AutomationCounter.update(value=team.index(user_id) + 1).where(
        (AutomationCounter.rule == call.rule_id) & (AutomationCounter.step == call.step)).execute()
    update_record(call.record, {"owner": user_id})
    return f"owner set to user {user_id} ({fewest} open)"


def update_field(call: ActionCall) -> str:
    name = call.params["field"]
    key = name.removesuffix("_id") if name.endswith("_id") else name
    update_record(call.record, {key: call.params["value"]})
    return f"{name} set"


def add_tag(call: ActionCall) -> str:
    tags = tag_names(call.entity, [call.record.id])[call.record.id]
    if call.params["tag"] in tags:
        return "tag already there"
    update_record(call.record, {"tags": tags + [call.params["tag"]]})
    return f"tag {call.params['tag']} added"


def remove_tag(call: ActionCall) -> str:
    tags = tag_names(call.entity, [call.record.id])[call.record.id]
    if call.params["tag"] not in tags:
        return "tag not there"
    update_record(call.record, {"tags": [t for t in tags if t != call.params["tag"]]})
    return f"tag {call.params['tag']} removed"


def move_stage(call: ActionCall) -> str:
    if call.record.stage_id == call.params["stage_id"]:
        return "already in that stage"
    sdk.change_deal(call.record, {"stage_id": call.params["stage_id"]})
    return f"moved to stage {call.params['stage_id']}"


def notify_users(call: ActionCall) -> str:
    p = call.params
    ids = list(p["user_ids"]) + ([call.record.owner_id] if p["to_owner"] and getattr(call.record, "owner_id", None) else [])
    count = sdk.notify(call.tenant, ids, title=render(p["title"], call.record), text=render(p["text"], call.record),
                       link=record_link(call.entity, call.record.id), kind="automation")
    return f"{count} user(s) notified"


def create_deal(call: ActionCall) -> str:
    """A deal linked to the record (a lead: its lead; a contact or company: theirs), owned
    by the record's owner, through the core's deal rules."""
    p = call.params
    data: dict[str, Any] = {"title": render(p["title"], call.record)[:200], "owner_id": getattr(call.record, "owner_id", None)}
    if call.entity in ("lead", "contact", "company"):
        data[f"{call.entity}_id"] = call.record.id
    if call.entity == "contact" and getattr(call.record, "company_id", None):
        data["company_id"] = call.record.company_id
    for key in ("value", "pipeline_id", "stage_id"):
        if p.get(key) is not None:
            data[key] = p[key]
    deal = sdk.create_deal(data)
    return f"deal #{deal.id} created"


def wait(call: ActionCall) -> str:  # the runner schedules the wake-up; nothing to do here
    return "waited"


BUILTIN_ACTIONS = (
    AutomationAction("create_task", "Create a task", create_task, CreateTaskParams, description="A task linked to the record, for its owner unless said."),
    AutomationAction("assign_owner", "Assign the owner (round-robin)", assign_owner, AssignOwnerParams, ("lead", "contact", "company", "deal")),
    AutomationAction("assign_least_loaded", "Assign the owner (least loaded in a team)", assign_least_loaded, AssignLeastLoadedParams,
                     description="The team member with the fewest open records of this kind; ties in turn."),
    AutomationAction("update_field", "Update a field", update_field, UpdateFieldParams),
    AutomationAction("add_tag", "Add a tag", add_tag, TagParams),
    AutomationAction("remove_tag", "Remove a tag", remove_tag, TagParams),
    AutomationAction("move_stage", "Move the deal to a stage", move_stage, MoveStageParams, ("deal",)),
    AutomationAction("notify", "Notify users (in-app)", notify_users, NotifyParams),
    AutomationAction("create_deal", "Create a deal", create_deal, CreateDealParams, ("lead", "contact", "company"),
                     description="A deal linked to the record, for its owner (default pipeline and first stage unless named)."),
    AutomationAction("wait", "Wait", wait, WaitParams, description="Pause the run; it resumes within a minute of the time."),
    AutomationAction("wait_no_activity", "Wait until no activity for a while", wait, WaitNoActivityParams,
                     description="Resumes once the record has had no activity for that long (new activity pushes it back)."),
    AutomationAction("wait_for_reply", "Wait for a reply (at most)", wait, WaitForReplyParams, ("lead", "contact", "deal"),
                     description="Resumes when the contact replies (or the time is up); a reply ends the run unless on_reply is continue."),
)
