"""GET /api/v1/{leads,contacts,companies,deals}/<id>/timeline: everything that happened
on a record, newest first: its activities, notes, tasks, attached files and, for deals,
stage changes. A company's timeline rolls up its contacts' and deals' activities, notes
and tasks too (subqueries in the same one query per kind, so still paged in SQL).

Each kind is read with one query that is already ordered and limited the same way, and
the few rows are merged in Python, so a page costs one query per kind (at most four)
plus one for the record, however long the history. Pages are keyset based on
(at, type, id), newest first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import peewee
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate

from crmcore.api import common, linking
from crmcore.api.common import PageArgs, require
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities.models import (
    Activity,
    Company,
    Contact,
    Deal,
    DealStageChange,
    Lead,
    Note,
    Stage,
    Task,
)

blp = Blueprint("timeline", __name__, description="Timelines: a record's activities, notes, tasks and stage changes, newest first.")

#: URL collection -> (model, link name on activities/notes/tasks)
COLLECTIONS: dict[str, tuple[type, str]] = {"leads": (Lead, "lead"), "contacts": (Contact, "contact"), "companies": (Company, "company"), "deals": (Deal, "deal")}
TYPES = ("activity", "note", "task", "stage_change", "attachment")
SUMMARY_CHARS = 140


class TimelineItemSchema(Schema):
    type = fields.String(metadata={"description": "activity, note, task, stage_change or attachment."})
    id = fields.Integer()
    at = fields.DateTime(metadata={"description": "activity: occurred_at; note, task: created_at; stage_change: changed_at."})
    summary = fields.String()
    url = fields.String(metadata={"description": "The item's own resource (none for stage changes)."})
    user_id = fields.Integer(allow_none=True, metadata={"description": "Who: the activity's user, note's author, task's assignee, or who moved the deal."})
    kind = fields.String(metadata={"description": "activity only."})
    direction = fields.String(allow_none=True, metadata={"description": "activity only."})
    outcome = fields.String(allow_none=True, metadata={"description": "activity only: how it went (a call's outcome)."})
    duration_seconds = fields.Integer(allow_none=True, metadata={"description": "activity only: how long (a call's duration)."})
    notes = fields.String(metadata={"description": "activity only: its content, clipped, when the summary is its subject."})
    filename = fields.String(metadata={"description": "attachment only; `url` downloads it (signed-in users, as the record page does)."})
    size = fields.Integer(metadata={"description": "attachment only: bytes."})
    pinned = fields.Boolean(metadata={"description": "note only."})
    status = fields.String(metadata={"description": "task only."})
    due_at = fields.DateTime(allow_none=True, metadata={"description": "task only."})
    from_stage_id = fields.Integer(allow_none=True, metadata={"description": "stage_change only."})
    to_stage_id = fields.Integer(allow_none=True, metadata={"description": "stage_change only."})


class TimelinePageSchema(Schema):
    items = fields.List(fields.Nested(TimelineItemSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next (older) page; null on the last page."})


class TimelineQueryArgsSchema(PageArgs):
    type = fields.List(fields.String(validate=validate.OneOf(TYPES)), metadata={"description": "Only these kinds of item; repeat for several."})
    before = fields.DateTime(metadata={"description": "Only items strictly older than this (a simple alternative to `cursor`)."})


def _clip(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _older(model: type, at_column: Any, type_name: str, cursor: tuple[dt.datetime, str, int] | None) -> Any:
    """The condition "after ``cursor`` in (at, type, id) descending order" for one type."""
    if cursor is None:
        return None
    at, last_type, last_id = cursor
    if type_name < last_type:  # at the cursor's time, smaller types come later
        return at_column <= at
    if type_name == last_type:
        return (at_column < at) | ((at_column == at) & (model.id < last_id))
    return at_column < at


def _select(model: type, at_column: Any, type_name: str, query: Any, cursor: Any, before: Any, limit: int) -> Any:
    cond = _older(model, at_column, type_name, cursor)
    if cond is not None:
        query = query.where(cond)
    if before is not None:
        query = query.where(at_column < before)
    return query.order_by(at_column.desc(), model.id.desc()).limit(limit + 1)


def _linked(model: type, link: str, record: Any) -> Any:
    """Rows of ``model`` linked to the record; for a company also those linked to its
    contacts or deals (the company's roll-up), as subqueries of the same query."""
    own = getattr(model, link) == record.id
    if link == "company":
        own = own | model.contact.in_(Contact.select(Contact.id).where(Contact.company == record.id)) | model.deal.in_(
            Deal.select(Deal.id).where(Deal.company == record.id))
    return linking.visible(model.select().where(own), model)


def items_for(link: str, record: Any, args: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the timeline of ``record`` (linked to items as ``link``)."""
    from crmcore.attachments import Attachment

    limit = args["limit"]
    wanted = set(args.get("type") or TYPES)
    before = common.naive_utc(args["before"]) if args.get("before") is not None else None
    cursor = None
    if args.get("cursor"):
        decoded = common._decode(args["cursor"])
        if len(decoded) != 3 or not isinstance(decoded[0], dt.datetime) or decoded[1] not in TYPES or not common._is_int(decoded[2]):
            abort(422, errors={"query": {"cursor": ["Not a valid cursor."]}})
        cursor = tuple(decoded)
    items: list[dict[str, Any]] = []
    if "activity" in wanted:
        query = _linked(Activity, link, record)
        for a in _select(Activity, Activity.occurred_at, "activity", query, cursor, before, limit):
            summary = a.subject or a.content or a.kind
            items.append({"type": "activity", "id": a.id, "at": a.occurred_at, "summary": _clip(summary), "url": f"/api/v1/activities/{a.id}", "user_id": a.user_id, "kind": a.kind, "direction": a.direction,
                          "outcome": a.outcome, "duration_seconds": a.duration_seconds, "notes": _clip(a.content) if a.subject else ""})
    if "note" in wanted:
        query = _linked(Note, link, record)
        for n in _select(Note, Note.created_at, "note", query, cursor, before, limit):
            items.append({"type": "note", "id": n.id, "at": n.created_at, "summary": _clip(n.body), "url": f"/api/v1/notes/{n.id}", "user_id": n.author_id, "pinned": n.pinned})
    if "task" in wanted:
        query = _linked(Task, link, record)
        for t in _select(Task, Task.created_at, "task", query, cursor, before, limit):
            items.append({"type": "task", "id": t.id, "at": t.created_at, "summary": _clip(t.title), "url": f"/api/v1/tasks/{t.id}", "user_id": t.assignee_id, "status": t.status, "due_at": t.due_at})
    if "stage_change" in wanted and link == "deal":
        source, target = Stage.alias(), Stage.alias()
        query = (
            DealStageChange.select(DealStageChange, source.name.alias("from_name"), target.name.alias("to_name"))
            .join(source, join_type=peewee.JOIN.LEFT_OUTER, on=(DealStageChange.from_stage == source.id))
            .switch(DealStageChange)
            .join(target, join_type=peewee.JOIN.LEFT_OUTER, on=(DealStageChange.to_stage == target.id))
            .where(DealStageChange.deal == record.id)
        )
        for c in _select(DealStageChange, DealStageChange.changed_at, "stage_change", query.objects(), cursor, before, limit):
            summary = f"Moved from {c.from_name or '(none)'} to {c.to_name or '(deleted stage)'}"
            items.append({"type": "stage_change", "id": c.id, "at": c.changed_at, "summary": summary, "user_id": c.changed_by_id, "from_stage_id": c.from_stage_id, "to_stage_id": c.to_stage_id})
    if "attachment" in wanted:
        query = Attachment.select().where((Attachment.entity == link) & (Attachment.record_id == record.id))
        for f in _select(Attachment, Attachment.created_at, "attachment", query, cursor, before, limit):
            items.append({"type": "attachment", "id": f.id, "at": f.created_at, "summary": f"Attached {f.filename}", "url": f"/app/attachments/{f.id}",
                          "user_id": f.uploaded_by_id, "filename": f.filename, "size": f.size})
    items.sort(key=lambda i: (i["at"], i["type"], i["id"]), reverse=True)
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = common._encode([last["at"], last["type"], last["id"]])
    return items, next_cursor


@blp.route("/<any(leads,contacts,companies,deals):collection>/<int:record_id>/timeline")
class Timeline(MethodView):
    @blp.arguments(TimelineQueryArgsSchema, location="query")
    @blp.response(200, TimelinePageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args, collection, record_id):
        """A record's timeline (newest first)

        Activities (at their occurred_at), notes and tasks (at their created_at) and,
        for deals, stage changes. 404 when the record is not visible to you.
        """
        model, link = COLLECTIONS[collection]
        record = common.visible(model.select().where(model.id == record_id), model).first()
        if record is None:
            abort(404, message=f"no {link} {record_id}")
        items, next_cursor = items_for(link, record, args)
        return {"items": items, "next_cursor": next_cursor}
