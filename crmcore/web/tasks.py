"""/app/tasks: the signed-in user's open tasks, grouped by when they are due.

Groups are overdue (due before today), due today, upcoming, and no due date. Days are
UTC days, as timestamps are stored (there is no per-user timezone yet). Completing a
task is a plain POST form that works without JavaScript; ``tasks.js`` sends the same
form with ``fetch`` and removes the row in place. Writes go through the API layer
(``crmcore.api.todos.check_refs`` + ``service``), so the rules are the API's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import peewee
from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for

from crmcore.api import linking, todos
from crmcore.api.todos import TaskSchema
from crmcore.contrib import NavItem
from crmcore.db import utcnow
from crmcore.entities import links, service
from crmcore.entities.errors import Invalid
from crmcore.entities.models import PRIORITIES, Company, Contact, Deal, Lead, Task
from crmcore.web.deals import names_of
from crmcore.web.forms import domain_errors, load_form
from crmcore.web.records import can, field_errors, page_url, require, users

bp = Blueprint("task_pages", __name__, url_prefix="/app/tasks")
NAV = NavItem("Tasks", "task_pages.index", order=50, icon="check")

GROUP_LIMIT = 100  # rows shown per group; the heading still counts them all
GROUPS = (
    ("overdue", "Overdue", "Nothing overdue. Well done."),
    ("today", "Due today", "Nothing due today."),
    ("upcoming", "Upcoming", "Nothing planned yet: add a task for your next step."),
    ("someday", "No due date", "Every task has a date."),
)
LINK_MODELS = {"deal": Deal, "lead": Lead, "contact": Contact, "company": Company}
COLLECTIONS = {"deal": "deals", "lead": "leads", "contact": "contacts", "company": "companies"}


def task_form_data(form: Any) -> Any:
    """The form's date and optional time inputs as the API's ``due_at`` (UTC)."""
    form = form.copy()
    day, time = form.get("due_date", "").strip(), form.get("due_time", "").strip()
    if day:
        form["due_at"] = f"{day}T{time or '00:00'}"
    return form


def safe_next(default: str) -> str:
    """``next`` from the form if it is a page of this app, else ``default`` (no open redirect)."""
    target = request.form.get("next", "")
    return target if target.startswith("/app/") and not target.startswith("//") else default


def day_bounds(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """Start of today and of tomorrow (naive UTC, as stored)."""
    now = now or utcnow()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + dt.timedelta(days=1)


def group_conditions(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    return {
        "overdue": Task.due_at < start,
        "today": (Task.due_at >= start) & (Task.due_at < end),
        "upcoming": Task.due_at >= end,
        "someday": Task.due_at.is_null(),
    }


def my_open_tasks() -> Any:
    return linking.visible(Task.select(), Task).where((Task.assignee == g.user.id) & (Task.status == "open"))


def group_counts(conditions: dict[str, Any]) -> dict[str, int]:
    """How many of my open tasks fall in each group: one query."""
    columns = [peewee.fn.COALESCE(peewee.fn.SUM(peewee.Case(None, [(cond, 1)], 0)), 0).alias(name) for name, cond in conditions.items()]
    row = my_open_tasks().select(*columns).dicts().get()
    return {name: int(row[name] or 0) for name in conditions}


def link_of(task: Task, names: dict[str, dict[int, str]]) -> dict[str, Any] | None:
    """The record a task belongs to: kind, name and page (when the app has one)."""
    for kind in LINK_MODELS:
        record_id = getattr(task, f"{kind}_id")
        if record_id is not None:
            return {"kind": kind, "name": names[kind].get(record_id, f"{kind} {record_id}"), "url": page_url(f"/app/{COLLECTIONS[kind]}/{record_id}")}
    return None


def linked_names(tasks: list[Task]) -> dict[str, dict[int, str]]:
    """Names of the records the tasks link to: one query per kind present."""
    out: dict[str, dict[int, str]] = {}
    for kind, model in LINK_MODELS.items():
        ids = {getattr(t, f"{kind}_id") for t in tasks}
        if model is Deal:
            ids.discard(None)
            out[kind] = dict(Deal.select(Deal.id, Deal.title).where(Deal.id.in_(sorted(ids))).tuples()) if ids else {}
        else:
            out[kind] = names_of(model, ids)
    return out


def page_context(errors: dict[str, list[str]] | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
    now = utcnow()
    start, end = day_bounds(now)
    conditions = group_conditions(start, end)
    counts = group_counts(conditions)
    order = {
        "overdue": (Task.due_at, Task.id),
        "today": (Task.due_at, Task.id),
        "upcoming": (Task.due_at, Task.id),
        "someday": (Task.created_at.desc(), Task.id.desc()),
    }
    groups = []
    every: list[Task] = []
    for key, title, empty in GROUPS:
        rows = list(my_open_tasks().where(conditions[key]).order_by(*order[key]).limit(GROUP_LIMIT)) if counts[key] else []
        every.extend(rows)
        groups.append({"key": key, "title": title, "empty": empty, "tasks": rows, "count": counts[key]})
    done = list(
        linking.visible(Task.select(), Task)
        .where((Task.assignee == g.user.id) & (Task.status == "done") & (Task.completed_at >= start))
        .order_by(Task.completed_at.desc(), Task.id.desc())
        .limit(10)
    )
    names = linked_names(every + done)
    return {
        "groups": groups,
        "total": sum(counts.values()),
        "done_today": done,
        "link_of": lambda t: link_of(t, names),
        "today": start.date(),
        "now": now,
        "errors": errors or {},
        "values": values or {"priority": "medium", "assignee_id": g.user.id},
        "assignee_options": [(u.id, (u.name or u.email) + (" (me)" if u.id == g.user.id else "")) for u in users() if u.active],
        "priority_options": [(p, p.capitalize()) for p in PRIORITIES],
        "can_write": can("records:write"),
    }


@bp.route("/")
def index():
    """My open tasks: overdue, today, upcoming, no due date."""
    require("records:read")
    return render_template("crm/tasks/index.html", **page_context())


@bp.route("/", methods=["POST"])
def create():
    """A new task, assigned to me unless another assignee is chosen."""
    require("records:write")
    form = task_form_data(request.form)
    data, errors = load_form(TaskSchema(only=("title", "due_at", "priority", "assignee_id")), form)
    errors = field_errors(errors)
    if not errors:
        try:
            links.task_input(data)
            task = service.create(Task, data)
        except Invalid as exc:
            errors = field_errors(domain_errors(exc))
        except service.Conflict as exc:
            errors = {"_form": [str(exc)]}
    if "due_at" in errors:
        errors["due_date"] = errors.pop("due_at")
    if errors:
        return render_template("crm/tasks/index.html", **page_context(errors, dict(request.form))), 422
    assignee = next((u for u in users() if u.id == task.assignee_id), None)
    flash(f"Task “{task.title}” added." if task.assignee_id == g.user.id or assignee is None else f"Task “{task.title}” added for {assignee.name or assignee.email}.")
    return redirect(url_for(".index"))


def _set_status(task_id: int, status: str) -> Any:
    require("records:write")
    task = todos.task_or_404(task_id)
    data = {"status": status}
    links.task_input(data, task)
    service.update(task, data)
    message = f"Completed “{task.title}”." if status == "done" else f"Reopened “{task.title}”."
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"id": task.id, "status": task.status, "message": message})
    flash(message)
    return redirect(safe_next(url_for(".index")))


@bp.route("/<int:task_id>/complete", methods=["POST"])
def complete(task_id: int):
    """Mark a task done (a form; JSON for the in-place script)."""
    return _set_status(task_id, "done")


@bp.route("/<int:task_id>/reopen", methods=["POST"])
def reopen(task_id: int):
    """Undo a completion."""
    return _set_status(task_id, "open")
