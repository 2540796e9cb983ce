"""Shared plumbing of the record pages: lists with bulk actions, forms, detail pages.

A :class:`RecordPages` describes one kind of record with the API layer's own pieces (its
schema, query-args schema, ``filtered`` and ``<x>_or_404``) and the domain's rules
(``check_refs``: :mod:`crmcore.entities.checks`), so a page accepts, refuses and shows
exactly what the API does, and :meth:`RecordPages.register`
adds the standard pages to a blueprint (``<prefix>`` is e.g. ``/app/leads``)::

    GET       <prefix>/                 list: search, filters, sorting, keyset pages
    POST      <prefix>/bulk             assign owner / add tag / delete (asks first)
    GET, POST <prefix>/new              create form
    GET       <prefix>/<id>             fields, custom fields, tags, timeline, plugin panels
    GET, POST <prefix>/<id>/edit        edit form; a stale version is refused
    GET, POST <prefix>/<id>/delete      delete, after a confirmation page
    POST      <prefix>/<id>/notes       add a note, a task or log a call in place
    POST      <prefix>/<id>/tasks
    POST      <prefix>/<id>/calls

Templates: ``crm/<plural>/list.html``, ``form.html`` and ``detail.html``, which extend
``crm/records/list.html``, ``form.html`` and ``detail.html`` and fill their blocks (the
columns, the filters, the fields). A subclass overrides the hooks it needs:
:meth:`~RecordPages.filter_query`, :meth:`~RecordPages.prepare_form`,
:meth:`~RecordPages.save`, :meth:`~RecordPages.extra_context`, ...
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
from typing import Any, Callable, Iterable

import peewee
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_smorest import abort as smorest_abort
from markupsafe import Markup
from marshmallow import Schema, ValidationError, fields, missing
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from crmcore import db
from crmcore.api import activities as activities_api
from crmcore.api import common
from crmcore.api import notes as notes_api
from crmcore.api import timeline as timeline_api
from crmcore.api import todos as todos_api
from crmcore.contrib import ListColumn, RecordPanel
from crmcore.entities import custom, links, service
from crmcore.entities.errors import Invalid
from crmcore.entities.models import Note, Tag, Task
from crmcore.models import User
from crmcore.web.forms import api_errors, domain_errors, flatten, load_form

log = logging.getLogger("crmcore.web")

#: most records one bulk action takes (a page is at most 500 rows)
MAX_BULK = 500
TIMELINE_PAGE = 25
#: tags offered in the tag filter's and the bulk bar's suggestions
TAG_SUGGESTIONS = 300


# --------------------------------------------------------------------------- small helpers


def can(permission: str) -> bool:
    """Whether the signed-in user's role has ``permission`` (templates: ``can("records:write")``)."""
    return common.has_permission(permission)


def require(permission: str) -> None:
    """403 unless the user's role has ``permission`` (the page hides what this refuses)."""
    if not can(permission):
        abort(403, f"Your role ({g.get('role')}) may not do this (it needs the permission {permission}).")


def users() -> list[User]:
    """The tenant's users (owners, assignees), one query per request."""
    if "_crm_users" not in g:
        g._crm_users = list(User.select(User.id, User.name, User.email, User.role, User.active).order_by(User.name, User.email))
    return g._crm_users


def user_names() -> dict[int, str]:
    return {u.id: (u.name or u.email) for u in users()}


def user_options(active_only: bool = True) -> list[tuple[int, str]]:
    return [(u.id, u.name or u.email) for u in users() if u.active or not active_only]


def tag_suggestions() -> list[str]:
    return [name for (name,) in Tag.select(Tag.name).order_by(Tag.name).limit(TAG_SUGGESTIONS).tuples()]


def page_url(path: str) -> str | None:
    """``path`` if some page of the app answers GET there (another engineer's or plugin's
    page, a deal's page say), else None: a link to a page that does not exist is worse
    than none."""
    adapter = current_app.url_map.bind("localhost")
    try:
        adapter.match(path, method="GET")
    except HTTPException:
        return None
    return path


def fmt_datetime(value: Any) -> str:
    """Stored datetimes are naive UTC."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M") + " UTC"
    return str(value)


def fmt_money(value: Any) -> str:
    if value is None or value == "":
        return ""
    try:
        return f"{decimal.Decimal(value):,.2f}"
    except (decimal.InvalidOperation, ValueError):
        return str(value)


def iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0).isoformat() + "Z"
    return ""


def form_value(value: Any) -> str:
    """A stored value as an input's text: lists comma-separated, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def field_errors(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """Errors keyed by the form's input names: ``tags.0`` -> ``tags`` (one input holds
    the list), ``custom.<key>`` stays, the schema's own -> ``_form``."""
    out: dict[str, list[str]] = {}
    for key, messages in errors.items():
        head = key.split(".", 1)[0]
        name = key if head == "custom" and "." in key else head
        if name in ("_schema", "custom"):
            name = "_form"
        out.setdefault(name, []).extend(messages)
    return out


def render_panels(entity: str, record: Any) -> list[dict[str, Any]]:
    """The panels plugins contribute through ``crm_record_panels`` for this record, each
    implementation and each ``render`` contained: a broken plugin costs its own panels,
    never the page."""
    from crmcore.app import crm_state

    panels = []
    results = crm_state().call(g.tenant, "crm_record_panels", tenant=g.tenant, user=g.user, entity=entity, record=record)
    for plugin, contributed in results:
        if not isinstance(contributed, (list, tuple)):
            log.error("plugin %r: crm_record_panels returned %r, not a list of RecordPanel", plugin, type(contributed).__name__)
            continue
        for panel in contributed:
            if not isinstance(panel, RecordPanel):
                log.error("plugin %r: crm_record_panels returned %r, not a RecordPanel", plugin, panel)
                continue
            try:
                body = Markup(panel.render())
            except Exception:
                log.exception("plugin %r: record panel %r failed", plugin, panel.name)
                body = Markup('<p class="muted">This panel could not be shown.</p>')
            panels.append({"name": panel.name, "title": panel.title, "order": panel.order, "body": body, "plugin": plugin})
    panels.sort(key=lambda p: (p["order"], p["title"]))
    return panels


def list_columns(entity: str) -> list[dict[str, Any]]:
    """The columns plugins contribute through ``crm_list_columns`` to ``entity``'s list
    page, each implementation contained (a broken plugin costs its own columns, never the
    page). Asked once per request: ``[{"column": ListColumn, "plugin": name}]``."""
    from crmcore.app import crm_state

    cache = g.setdefault("_crm_list_columns", {})
    if entity in cache:
        return cache[entity]
    columns: list[dict[str, Any]] = []
    seen: set[str] = set()
    for plugin, contributed in crm_state().call(g.tenant, "crm_list_columns", tenant=g.tenant, user=g.user, entity=entity):
        if not isinstance(contributed, (list, tuple)):
            log.error("plugin %r: crm_list_columns returned %r, not a list of ListColumn", plugin, type(contributed).__name__)
            continue
        for column in contributed:
            if not isinstance(column, ListColumn) or column.name in seen:
                log.error("plugin %r: crm_list_columns returned %r, not a ListColumn with a new name", plugin, column)
                continue
            seen.add(column.name)
            columns.append({"column": column, "plugin": plugin})
    columns.sort(key=lambda c: (c["column"].order, c["column"].label))
    cache[entity] = columns
    return columns


def column_cells(columns: list[dict[str, Any]], ids: list[int]) -> dict[str, dict[int, Markup]]:
    """``{column name: {record id: cell html}}``: each column's ``values`` called once for
    the whole page, contained (a raising one shows a note in its cells and is logged)."""
    cells: dict[str, dict[int, Markup]] = {}
    for entry in columns:
        column = entry["column"]
        if not ids:
            cells[column.name] = {}
            continue
        try:
            values = column.values(list(ids))
            cells[column.name] = {int(k): Markup(v) for k, v in dict(values).items()}
        except Exception:
            log.exception("plugin %r: list column %r failed", entry["plugin"], column.name)
            unavailable = Markup('<span class="muted" title="This column could not be shown.">–</span>')
            cells[column.name] = {i: unavailable for i in ids}
    return cells


def expression_page(query: Any, model: type, expression: Any, desc: bool, limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    """:func:`crmcore.api.common.keyset_page` for a sort by a (NOT NULL) SQL expression
    instead of a column: the expression is selected alongside the row, and the cursor
    holds its value and the id, so deep pages cost what the first one does."""
    key = expression.alias("_crm_sort_key")
    query = query.select_extend(key)
    order = [expression.desc(), model.id.desc()] if desc else [expression.asc(), model.id.asc()]
    if cursor:
        decoded = common._decode(cursor)
        if len(decoded) != 2 or not isinstance(decoded[1], int) or isinstance(decoded[0], (list, dict)):
            smorest_abort(422, errors={"query": {"cursor": ["Not a valid cursor."]}})
        last_value, last_id = decoded
        if desc:
            cond = (expression < last_value) | ((expression == last_value) & (model.id < last_id))
        else:
            cond = (expression > last_value) | ((expression == last_value) & (model.id > last_id))
        query = query.where(cond)
    rows = list(query.order_by(*order).limit(limit + 1))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = common._encode([last._crm_sort_key, last.id])
    return rows, next_cursor


def int_list(values: Iterable[str]) -> list[int]:
    out = []
    for v in values:
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            continue
    return sorted(set(out))


def inline_config(entity: str, record: Any) -> dict[str, Any] | None:
    """The fields the record's page edits in place (:mod:`crmcore.web.inline_edit`)."""
    from crmcore.web.inline_edit import inline_config as config

    return config(entity, record)


def likely_duplicates(pages: Any, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Visible records like the one about to be created, with links and reasons
    (:mod:`crmcore.entities.duplicates`)."""
    from crmcore.entities import checks, duplicates

    # The same address is a hard conflict (409, with a link), not a warning: raised first.
    if pages.entity == "contact":
        checks.contact_duplicate_emails(data)
    email = str(data.get("email") or "").strip().lower()
    model = pages.model
    if email and "email" in model._meta.fields:
        existing = model.select().where(peewee.fn.LOWER(model.email) == email).first()
        if existing is not None:
            raise service.Conflict(f"a {pages.label} with email {email} already exists", existing, "email")
    return [
        {"title": pages.title(found["record"]), "url": pages.url("detail", record_id=found["record"].id), "reasons": found["reasons"]}
        for found in duplicates.likely(pages.entity, data, common.request_context())
    ]


def saved_views_context(entity: str) -> dict[str, Any]:
    """The list's saved views (:mod:`crmcore.web.views_saved`, which imports this module)."""
    from crmcore.web.views_saved import list_context

    return list_context(entity)


# --------------------------------------------------------------------------- the pages


class RecordPages:
    """The standard pages of one kind of record. Subclass and set the class attributes."""

    #: "lead": tags, custom fields, timeline links, the crm_record_panels argument
    entity: str = ""
    #: "leads": URLs (/app/leads), templates (crm/leads/)
    plural: str = ""
    label: str = ""  # "lead" in messages
    labels: str = ""  # "leads"
    model: type[peewee.Model]
    schema: type[Schema]
    query_schema: type[Schema]
    #: filter keys that count as "the list is filtered" besides the query schema's
    extra_filter_keys: tuple[str, ...] = ()
    #: schema field -> the form input that shows its errors (company_id -> company)
    error_inputs: dict[str, str] = {}

    # -- what a subclass provides (the API module's functions) ------------------------

    def get(self, record_id: int) -> Any:
        """The visible record or 404 (``lead_or_404``)."""
        raise NotImplementedError

    def filtered(self, args: dict[str, Any]) -> Any:
        """The API's list query for ``args`` (``leads.filtered``)."""
        raise NotImplementedError

    def check_refs(self, data: dict[str, Any], record: Any = None) -> None:
        """The domain's rules for this kind of record (``crmcore.entities.checks``);
        raise Invalid with field messages (or Conflict)."""
        raise NotImplementedError

    def title(self, record: Any) -> str:
        return getattr(record, "name", None) or f"{self.label.capitalize()} {record.id}"

    # -- hooks with defaults ------------------------------------------------------------

    def dump(self, records: list[Any]) -> list[Any]:
        """Records with ``record.tags`` (one query for all)."""
        return common.with_tags(self.entity, records)

    def filter_query(self, query: Any, args: dict[str, Any]) -> Any:
        """Page-only filters on top of the API's (a name search for a company ...)."""
        return query

    def prepare_form(self, form: MultiDict, record: Any) -> tuple[MultiDict, dict[str, list[str]]]:
        """Turn page-only inputs into the schema's (a company name into company_id)."""
        return form, {}

    def save(self, data: dict[str, Any], record: Any, version: int | None) -> Any:
        """Create or update through the one write path; raises Conflict / StaleVersion."""
        if record is None:
            return service.create(self.model, data)
        service.update(record, data, if_version=version)
        return record

    def new_values(self) -> dict[str, Any]:
        """A new record's form: the schema's defaults, owned by the signed-in user."""
        values = {}
        for name, field in self.schema().fields.items():
            default = field.load_default
            if default is not None and default is not missing and not callable(default):
                values[field.data_key or name] = form_value(default)
        values["owner_id"] = str(g.user.id)
        return values

    def edit_values(self, record: Any) -> dict[str, Any]:
        dumped = self.schema().dump(record)
        values = {key: form_value(value) for key, value in dumped.items() if key != "custom"}
        for key, value in (record.custom or {}).items():
            values[f"custom.{key}"] = form_value(value)
        return values

    def extra_context(self, view: str, record: Any = None) -> dict[str, Any]:
        """More template variables for ``view`` ("list", "form", "detail")."""
        return {}

    # -- URLs ------------------------------------------------------------------------------

    def register(self, bp: Blueprint) -> None:
        self.bp_name = bp.name
        bp.add_url_rule("/", "index", self.list_view)
        bp.add_url_rule("/bulk", "bulk", self.bulk_view, methods=["POST"])
        bp.add_url_rule("/new", "new", self.form_view, methods=["GET", "POST"])
        bp.add_url_rule("/<int:record_id>", "detail", self.detail_view)
        bp.add_url_rule("/<int:record_id>/edit", "edit", self.form_view, methods=["GET", "POST"])
        bp.add_url_rule("/<int:record_id>/delete", "delete", self.delete_view, methods=["GET", "POST"])
        bp.add_url_rule("/<int:record_id>/notes", "add_note", self.add_note, methods=["POST"])
        bp.add_url_rule("/<int:record_id>/tasks", "add_task", self.add_task, methods=["POST"])
        bp.add_url_rule("/<int:record_id>/calls", "log_call", self.log_call, methods=["POST"])

    def url(self, view: str, **values: Any) -> str:
        record = values.pop("record", None)
        if record is not None:
            values["record_id"] = record.id
        return url_for(f"{self.bp_name}.{view}", **values)

    def render(self, template: str, status: int = 200, **context: Any) -> Any:
        context.setdefault("pages", self)
        return render_template(template, can=can, fmt_datetime=fmt_datetime, fmt_money=fmt_money, iso=iso, **context), status

    # -- list ------------------------------------------------------------------------------

    def list_args(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The query string read by the API's query-args schema; values that do not fit
        are left out (and reported) rather than failing the whole page."""
        schema = self.query_schema()
        raw: dict[str, Any] = {}
        plugin_sort = self.plugin_sort() is not None
        for name, field in schema.fields.items():
            key = field.data_key or name
            if key == "sort" and plugin_sort:
                continue  # sorted by a plugin's column (list_view), not by the schema's
            values = [v.strip() for v in request.args.getlist(key) if v.strip()]
            if values:
                raw[key] = values if isinstance(field, fields.List) else values[0]
        try:
            return schema.load(raw), {}
        except ValidationError as exc:
            bad = set(exc.messages) if isinstance(exc.messages, dict) else set()
            problems = flatten(exc.messages)
            try:
                return schema.load({k: v for k, v in raw.items() if k not in bad}), problems
            except ValidationError:
                return schema.load({}), problems

    def plugin_sort(self) -> tuple[ListColumn, bool] | None:
        """``(column, descending)`` when ``?sort=`` names a sortable plugin column."""
        wanted = request.args.get("sort", "").strip()
        if ":" not in wanted:
            return None
        for entry in list_columns(self.entity):
            column = entry["column"]
            if column.sort is not None and column.name == wanted.lstrip("-"):
                return column, wanted.startswith("-")
        return None

    def plugin_filters(self, query: Any, problems: dict[str, list[str]]) -> Any:
        """Apply the filters of plugin columns given in the query string; a value not
        offered is reported and left out, as the page's own filters are."""
        for entry in list_columns(self.entity):
            column = entry["column"]
            if column.filter is None:
                continue
            wanted = [v.strip() for v in request.args.getlist(column.name) if v.strip()]
            if not wanted:
                continue
            offered = [v for v, _ in column.filter.options]
            chosen = [v for v in wanted if v in offered]
            if len(chosen) < len(wanted):
                problems[column.name] = [f"Must be one of: {', '.join(offered)}."]
            if not chosen:
                continue
            try:
                query = query.where(column.filter.where(chosen))
            except Exception:
                log.exception("plugin %r: filter of list column %r failed", entry["plugin"], column.name)
                problems[column.name] = ["This filter could not be applied."]
        return query

    def is_filtered(self, args: dict[str, Any]) -> bool:
        ignore = {"limit", "cursor", "sort"}
        keys = set(self.extra_filter_keys) | {k for k in args if k not in ignore}
        keys |= {c["column"].name for c in list_columns(self.entity) if c["column"].filter is not None}
        return any(request.args.get(k, "").strip() for k in keys) or any(k.startswith("custom.") for k in request.args)

    def list_view(self) -> Any:
        require("records:read")
        args, problems = self.list_args()
        rows: list[Any] = []
        next_cursor = None
        columns = list_columns(self.entity)
        by_plugin = self.plugin_sort()
        sort = f"{'-' if by_plugin[1] else ''}{by_plugin[0].name}" if by_plugin else args["sort"]
        try:
            query = self.filter_query(self.filtered(args), args)
            plain = query
            query = self.plugin_filters(query, problems)
            try:
                if by_plugin:
                    rows, next_cursor = expression_page(query, self.model, by_plugin[0].sort, by_plugin[1], args["limit"], args.get("cursor"))
                else:
                    rows, next_cursor = common.keyset_page(query, self.model, args["sort"], args["limit"], args.get("cursor"))
            except peewee.DatabaseError:
                if query is plain and not by_plugin:
                    raise
                # A plugin's sort or filter expression the database refuses: the list
                # without them rather than an error page.
                used = sorted({c["plugin"] for c in columns if (by_plugin and c["column"] is by_plugin[0]) or request.args.get(c["column"].name)})
                log.exception("plugin(s) %s: sorting or filtering the %s list by their column failed", ", ".join(map(repr, used)), self.labels)
                problems["sort" if by_plugin else "_filters"] = ["A plugin's column could not sort or filter this list; shown without it."]
                sort = args["sort"]
                rows, next_cursor = common.keyset_page(plain, self.model, args["sort"], args["limit"], args.get("cursor"))
        except HTTPException as exc:
            if exc.code != 422:
                raise
            problems.update(api_errors(exc))
        self.dump(rows)
        ids = [r.id for r in rows]
        cells = column_cells(columns, ids)
        can_bulk = can("records:bulk")
        context = dict(
            rows=rows,
            next_cursor=next_cursor,
            args=args,
            sort=sort,
            problems=problems,
            plugin_columns=[c["column"] for c in columns],
            plugin_cells=cells,
            plugin_stylesheets=list(dict.fromkeys(url for c in columns for url in c["column"].stylesheets)),
            filtering=self.is_filtered(args),
            owners=user_options(active_only=False),
            owner_names=user_names(),
            tag_options=tag_suggestions(),
            can_bulk=can_bulk,
            can_delete=can_bulk and can("records:delete"),
            live_topics=[f"list:{self.entity}"],  # "new or changed records" (crmcore/live.py)
        )
        context.update(saved_views_context(self.entity))
        context.update(self.extra_context("list"))
        return self.render(f"crm/{self.plural}/list.html", **context)

    # -- bulk actions ------------------------------------------------------------------------

    def back_to_list(self) -> str:
        """Where a bulk action returns: the list page it came from (same filters, same
        page), never anywhere else."""
        target = request.form.get("next", "")
        prefix = self.url("index")
        if target.startswith(prefix) and not target.startswith("//"):
            return target
        return prefix

    def bulk_view(self) -> Any:
        require("records:bulk")
        action = request.form.get("action", "")
        if action not in ("assign", "tag", "delete"):
            abort(400, "Unknown bulk action.")
        if action == "delete":
            require("records:delete")
        back = self.back_to_list()
        ids = int_list(request.form.getlist("ids"))
        if not ids:
            flash(f"Select at least one {self.label} first.")
            return redirect(back)
        if len(ids) > MAX_BULK:
            flash(f"Select at most {MAX_BULK} {self.labels} at a time.")
            return redirect(back)
        records = list(common.visible(self.model.select().where(self.model.id.in_(ids)), self.model).order_by(self.model.id))
        if len(records) != len(ids):
            # Someone deleted some meanwhile, or ids were made up: change nothing.
            flash(f"{len(ids) - len(records)} of the selected {self.labels} no longer exist; nothing was changed.")
            return redirect(back)
        if action == "assign":
            return self.bulk_assign(records, back)
        if action == "tag":
            return self.bulk_tag(records, back)
        return self.bulk_delete(records, back)

    def bulk_assign(self, records: list[Any], back: str) -> Any:
        raw = request.form.get("owner_id", "").strip()
        owner_id = int(raw) if raw.isdigit() else None
        if raw and owner_id not in user_names():
            flash("Choose an owner from the list.")
            return redirect(back)
        with db.atomic():
            changed = sum(1 for r in records if service.update(r, {"owner": owner_id}))
        who = user_names()[owner_id] if owner_id else "nobody"
        flash(f"Assigned {len(records)} {self.label if len(records) == 1 else self.labels} to {who} ({changed} changed).")
        return redirect(back)

    def bulk_tag(self, records: list[Any], back: str) -> Any:
        name = " ".join(request.form.get("tag", "").split())
        if not name or len(name) > 60:
            flash("Type a tag name (1 to 60 characters) to add.")
            return redirect(back)
        with db.atomic():
            tag = Tag.get_or_none(Tag.name == name) or service.create(Tag, {"name": name})
            changed = service.apply_tag(tag, self.entity, [r.id for r in records])
        flash(f"Tagged {len(changed)} {self.label if len(changed) == 1 else self.labels} with “{name}” ({len(records) - len(changed)} had it already).")
        return redirect(back)

    def bulk_delete(self, records: list[Any], back: str) -> Any:
        if request.form.get("confirmed") != "yes":
            self.dump(records)
            return self.render("crm/records/confirm_delete.html", records=records, back=back, action=self.url("bulk"), bulk=True)
        try:
            with db.atomic():
                for record in records:
                    service.delete(record)
        except service.Conflict as exc:
            flash(f"Nothing was deleted: {exc}")
            return redirect(back)
        flash(f"Deleted {len(records)} {self.label if len(records) == 1 else self.labels}.")
        return redirect(back)

    # -- create / edit -----------------------------------------------------------------------

    def input_errors(self, errors: dict[str, list[str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, messages in errors.items():
            out.setdefault(self.error_inputs.get(key, key), []).extend(messages)
        return out

    def custom_definitions(self) -> dict[str, Any]:
        key = f"_crm_custom_{self.entity}"
        if key not in g:
            setattr(g, key, custom.definitions(self.entity))
        return g.get(key)

    def custom_inputs(self) -> list[dict[str, Any]]:
        """The custom fields as the form shows them (a choice's options as pairs)."""
        return [
            {"key": f.key, "label": f.label, "kind": f.kind, "required": f.required, "options": [(str(c), str(c)) for c in f.choices or []]}
            for f in self.custom_definitions().values()
        ]

    def custom_from_form(self, form: MultiDict) -> dict[str, Any]:
        """``custom.<key>`` inputs by the tenant's definitions: an emptied input clears the
        value (None), an unticked checkbox is False."""
        out: dict[str, Any] = {}
        for key, field in self.custom_definitions().items():
            name = f"custom.{key}"
            if field.kind == "boolean":
                if name in form or f"{name}__present" in form:
                    out[key] = form.get(name) not in (None, "", "0", "false", "off")
            elif name in form:
                value = form.get(name, "").strip()
                out[key] = value if value != "" else None
        return out

    def load(self, form: MultiDict, record: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The submitted form checked by the API's schema. An edit changes only the inputs
        the form has (as a PATCH), so a field a template leaves out is never wiped; an
        emptied required input is still an error, not "unchanged"."""
        form, errors = self.prepare_form(MultiDict(form), record)
        plain = MultiDict([(k, v) for k, v in form.items(multi=True) if not k.startswith("custom.")])
        schema = self.schema()
        data, schema_errors = load_form(schema, plain, partial=record is not None)
        if record is not None:
            for name, field in schema.fields.items():
                key = field.data_key or name
                if field.required and key in plain and not plain.get(key, "").strip() and key not in schema_errors:
                    try:
                        self.schema(only=(name,)).load({key: ""})
                    except ValidationError as exc:
                        schema_errors.update(flatten(exc.messages))
        errors = {**self.input_errors(field_errors(schema_errors)), **errors}
        data["custom"] = self.custom_from_form(form)
        return data, errors

    def form_view(self, record_id: int | None = None) -> Any:
        require("records:write")
        record = self.get(record_id) if record_id is not None else None
        if record is not None:
            self.dump([record])
        errors: dict[str, list[str]] = {}
        duplicate = None
        stale = False
        status = 200
        version = record.version if record is not None else None
        if request.method == "POST":
            if record is not None:
                try:
                    version = int(request.form.get("version", ""))
                except ValueError:
                    version = -1  # no version sent: treat as stale rather than overwrite
            data, errors = self.load(request.form, record)
            if not errors:
                try:
                    self.check_refs(data, record)
                    if record is None and request.form.get("confirm_duplicates") != "yes":
                        similar = likely_duplicates(self, data)
                        if similar:  # warn first; "Create anyway" sends confirm_duplicates
                            context = dict(record=None, values=request.form.to_dict(), errors={}, likely_duplicates=similar, duplicate=None, stale=False, version=None, custom_fields=self.custom_inputs(), owners=user_options(), tag_options=tag_suggestions())
                            context.update(self.extra_context("form", None))
                            return self.render(f"crm/{self.plural}/form.html", 200, **context)
                    saved = self.save(data, record, version)
                except Invalid as exc:
                    errors = self.input_errors(field_errors(domain_errors(exc)))
                except service.StaleVersion:
                    stale = True
                except service.Conflict as exc:
                    field = exc.field or "_form"
                    what = f"this {exc.field}" if exc.field else "these details"
                    errors = {field: [f"A {self.label} with {what} exists."]}
                    if exc.existing is not None and isinstance(exc.existing, self.model):
                        duplicate = {"title": self.title(exc.existing), "url": self.url("detail", record_id=exc.existing.id)}
                else:
                    flash(f"{self.label.capitalize()} “{self.title(saved)}” {'saved' if record is not None else 'created'}.")
                    return redirect(self.url("detail", record_id=saved.id))
            status = 409 if (stale or duplicate) else 422
            values = request.form.to_dict()
            if record is not None:
                record = self.get(record.id)  # as stored: the title, the current version
                self.dump([record])
        else:
            if record is not None:
                values = self.edit_values(record)
            else:  # a link may prefill the new record ("New contact" on a company's page)
                values = self.new_values()
                values.update({k: v for k, v in request.args.items() if k in self.schema().fields})
        context = dict(record=record, values=values, errors=errors, duplicate=duplicate, stale=stale, version=version, custom_fields=self.custom_inputs(), owners=user_options(), tag_options=tag_suggestions())
        context.update(self.extra_context("form", record))
        return self.render(f"crm/{self.plural}/form.html", status, **context)

    # -- detail ------------------------------------------------------------------------------

    def timeline(self, record: Any) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the record's timeline by the API's own queries (newest first)."""
        args = {"limit": TIMELINE_PAGE, "cursor": request.args.get("timeline") or None}
        try:
            return timeline_api.items_for(self.entity, record, args)
        except HTTPException:  # a mangled cursor: start from the newest
            return timeline_api.items_for(self.entity, record, {"limit": TIMELINE_PAGE})

    def detail_view(self, record_id: int, record: Any = None, status: int = 200, forms: dict[str, Any] | None = None) -> Any:
        require("records:read")
        record = record if record is not None else self.get(record_id)
        self.dump([record])
        items, timeline_next = self.timeline(record)
        defs = self.custom_definitions()
        stored = record.custom or {}
        custom_values = [{"label": f.label, "kind": f.kind, "value": stored.get(key)} for key, f in defs.items()]
        # values of fields deleted since: still the record's data, so still shown
        custom_values += [{"label": key, "kind": "text", "value": value} for key, value in stored.items() if key not in defs]
        context = dict(
            record=record,
            custom_values=custom_values,
            owner_names=user_names(),
            assignees=user_options(),
            timeline=items,
            timeline_next=timeline_next,
            panels=render_panels(self.entity, record),
            forms=forms or {},
            can_write=can("records:write"),
            can_delete=can("records:delete"),
            now=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
            # someone else's change or a new timeline item shows up live (crmcore/live.py)
            live_topics=[f"record:{self.entity}:{record.id}"],
            live_label=self.title(record),
            inline_edit=inline_config(self.entity, record),
        )
        context.update(self.extra_context("detail", record))
        return self.render(f"crm/{self.plural}/detail.html", status, **context)

    def delete_view(self, record_id: int) -> Any:
        require("records:delete")
        record = self.get(record_id)
        if request.method == "GET":
            self.dump([record])
            return self.render("crm/records/confirm_delete.html", records=[record], back=self.url("detail", record_id=record.id), action=self.url("delete", record_id=record.id), bulk=False, version=record.version)
        try:
            version = int(request.form.get("version", ""))
        except ValueError:
            version = None
        try:
            service.delete(record, if_version=version)
        except service.StaleVersion:
            flash(f"This {self.label} changed since you asked to delete it; look at it again, then delete it if you still want to.")
            return redirect(self.url("detail", record_id=record.id))
        except service.Conflict as exc:
            flash(f"The {self.label} could not be deleted: {exc}")
            return redirect(self.url("detail", record_id=record.id))
        flash(f"{self.label.capitalize()} “{self.title(record)}” deleted.")
        return redirect(self.url("index"))

    # -- notes, tasks, calls in place ----------------------------------------------------------

    def _linked_write(self, record_id: int, kind: str, schema: Schema, form: MultiDict, check: Callable[[dict[str, Any]], None], create: Callable[[dict[str, Any]], Any], done: str, extra_errors: dict[str, list[str]] | None = None, renames: dict[str, str] | None = None) -> Any:
        """Validate a note/task/call form with the API's schema and checks, linked to the
        record; on success back to the page, else the page again with the errors."""
        require("records:write")
        record = self.get(record_id)
        data, errors = load_form(schema, form)
        errors = {**field_errors(errors), **(extra_errors or {})}
        if not errors:
            data[f"{self.entity}_id"] = record.id
            try:
                check(data)
                create(data)
            except Invalid as exc:
                errors = field_errors(domain_errors(exc))
            except service.Conflict as exc:
                errors = {"_form": [str(exc)]}
        for old, new in (renames or {}).items():
            if old in errors:
                errors.setdefault(new, []).extend(errors.pop(old))
        if errors:
            return self.detail_view(record.id, record=record, status=422, forms={kind: {"values": request.form, "errors": errors}})
        flash(done)
        return redirect(self.url("detail", record_id=record.id) + "#timeline")

    def add_note(self, record_id: int) -> Any:
        return self._linked_write(record_id, "note", notes_api.NoteSchema(only=("body", "pinned")), request.form, links.note_input, lambda d: service.create(Note, d), "Note added.")

    def add_task(self, record_id: int) -> Any:
        schema = todos_api.TaskSchema(only=("title", "due_at", "assignee_id", "priority"))
        return self._linked_write(record_id, "task", schema, request.form, links.task_input, lambda d: service.create(Task, d), "Task added.")

    def log_call(self, record_id: int) -> Any:
        form = MultiDict(request.form)
        form["kind"] = "call"
        errors: dict[str, list[str]] = {}
        minutes = form.pop("duration_minutes", "").strip()
        if minutes:
            try:
                seconds = round(float(minutes) * 60)
                if seconds < 0:
                    raise ValueError
                form["duration_seconds"] = str(seconds)
            except (ValueError, OverflowError):
                errors["duration_minutes"] = ["Minutes, like 5 or 2.5."]
        schema = activities_api.ActivitySchema(only=("kind", "direction", "subject", "content", "outcome", "occurred_at", "duration_seconds"))
        return self._linked_write(record_id, "call", schema, form, links.activity_input, service.log_activity, "Call logged.", errors, {"duration_seconds": "duration_minutes"})

