"""/api/v1/tasks: the CRM's to-dos (call back, send the offer ...), optionally linked to
a lead, contact, company or deal. Not the background task queue (crmcore.tasks).

Completing a task (status ``done``) stamps ``completed_at``; reopening or cancelling it
clears it. A new task is assigned to the caller unless ``assignee_id`` says otherwise.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate

from crmcore.api import common, linking
from crmcore.api.common import require
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import links, service
from crmcore.entities.models import PRIORITIES, TASK_STATUSES, Task

blp = Blueprint("tasks", __name__, url_prefix="/tasks", description="Tasks: to-dos for users, optionally linked to records.")


class TaskSchema(linking.LinkFieldsSchema):
    id = fields.Integer(dump_only=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    due_at = fields.DateTime(allow_none=True)
    reminder_at = fields.DateTime(allow_none=True, metadata={"description": "When to remind the assignee."})
    assignee_id = fields.Integer(allow_none=True, metadata={"description": "Default: the caller's user."})
    status = fields.String(load_default="open", validate=validate.OneOf(TASK_STATUSES))
    priority = fields.String(load_default="medium", validate=validate.OneOf(PRIORITIES))
    completed_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class TaskPageSchema(Schema):
    items = fields.List(fields.Nested(TaskSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last page."})


SORTS = ("-created_at", "created_at", "-updated_at", "updated_at", "id", "-id")


class TaskQueryArgsSchema(linking.LinkFilterArgs):
    status = fields.List(fields.String(validate=validate.OneOf(TASK_STATUSES)), metadata={"description": "Repeat for several."})
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    assignee_id = fields.Integer(metadata={"description": "0 for unassigned."})
    mine = fields.Boolean(metadata={"description": "Only tasks assigned to the caller's user."})
    due_after = fields.DateTime(metadata={"description": "Inclusive."})
    due_before = fields.DateTime(metadata={"description": "Exclusive; `due_before=<now>&status=open`: overdue."})
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(SORTS))


def check_refs(data: dict[str, Any], record: Task | None = None) -> None:
    """The domain's task rules (:func:`crmcore.entities.links.task_input`): links and
    assignee in this tenant; completed_at follows the status."""
    links.task_input(data, record, common.request_context())


def task_or_404(task_id: int) -> Task:
    return linking.record_or_404(Task, task_id, "task")


def filtered(args: dict[str, Any]) -> Any:
    query = linking.filter_links(linking.visible(Task.select(), Task), Task, args)
    if args.get("status"):
        query = query.where(Task.status.in_(args["status"]))
    if args.get("priority"):
        query = query.where(Task.priority == args["priority"])
    if "assignee_id" in args:
        query = query.where(Task.assignee.is_null() if args["assignee_id"] == 0 else Task.assignee == args["assignee_id"])
    if args.get("mine"):
        me = common.current_user_id()
        if me is None:
            abort(422, errors={"query": {"mine": ["This token belongs to no user; use assignee_id."]}})
        query = query.where(Task.assignee == me)
    if args.get("due_after") is not None:
        query = query.where(Task.due_at >= common.naive_utc(args["due_after"]))
    if args.get("due_before") is not None:
        query = query.where(Task.due_at < common.naive_utc(args["due_before"]))
    return query


@blp.route("")
class Tasks(MethodView):
    @blp.arguments(TaskQueryArgsSchema, location="query")
    @blp.response(200, TaskPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List tasks

        Filters combine with AND. Pages are keyset based: follow `next_cursor`.
        """
        rows, next_cursor = common.keyset_page(filtered(args), Task, args["sort"], args["limit"], args.get("cursor"), plain=True)
        return {"items": rows, "next_cursor": next_cursor}

    @blp.arguments(TaskSchema)
    @blp.response(201, TaskSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def post(self, data):
        """Create a task"""
        check_refs(data)
        try:
            task = service.create(Task, data)
        except service.Conflict as exc:  # a linked record vanished meanwhile
            common.conflict(exc, "tasks")
        return task, 201, common.with_etag(task)


@blp.route("/<int:task_id>")
class TaskById(MethodView):
    @blp.response(200, TaskSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, task_id):
        """Get a task (with its ETag)"""
        task = task_or_404(task_id)
        return task, 200, common.with_etag(task)

    @blp.arguments(TaskSchema(partial=True))
    @blp.response(200, TaskSchema)
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def patch(self, data, task_id):
        """Change a task; `{"status": "done"}` completes it"""
        task = task_or_404(task_id)
        version = common.if_match_version(task)
        check_refs(data, task)
        try:
            service.update(task, data, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
        except service.Conflict as exc:
            common.conflict(exc, "tasks")
        return task, 200, common.with_etag(task)

    @blp.response(204)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:delete")
    def delete(self, task_id):
        """Delete a task"""
        task = task_or_404(task_id)
        version = common.if_match_version(task)
        try:
            service.delete(task, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
