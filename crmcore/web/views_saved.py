"""/app/views: saving, updating and deleting saved views from the list pages.

A list page (:class:`crmcore.web.records.RecordPages`) shows its saved views as links
(``<list>?<the view's query>&view=<id>``) with :func:`list_context`, and a small form that
posts the list's current query string here. The filters are checked with the API's
:func:`crmcore.api.saved_views.clean_query`, the rules are the domain's
(:mod:`crmcore.entities.saved_views`), so a view saved here is one the API reads back::

    POST /app/views                     save the list's filters and sort as a new view
    POST /app/views/<id>/update         replace a view's filters with the list's current ones
    POST /app/views/<id>/delete         delete a view

Each answers with a redirect to the list (and a message saying what happened or what was
wrong), never an error page for bad input.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, abort, flash, g, redirect, request, url_for
from werkzeug.datastructures import MultiDict

from crmcore.api import common
from crmcore.api import saved_views as views_api
from crmcore.entities import saved_views as domain
from crmcore.entities.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    StaleVersion,
)
from crmcore.web.records import require

bp = Blueprint("saved_view_pages", __name__, url_prefix="/app/views")

#: the list page of each entity a view can be saved for
LIST_ENDPOINTS = {"lead": "lead_pages.index", "contact": "contact_pages.index", "company": "company_pages.index", "deal": "deal_pages.index"}


def query_of(args: MultiDict) -> dict[str, list[str]]:
    """A list page's query string as a view's query: filters and sort, no page."""
    out: dict[str, list[str]] = {}
    for key, value in args.items(multi=True):
        if key not in views_api.NOT_SAVED and value.strip():
            out.setdefault(key, []).append(value.strip())
    return out


def list_url(entity: str, query: dict[str, list[str]] | None = None, view_id: int | None = None) -> str:
    pairs = [(k, v) for k, values in (query or {}).items() for v in values]
    if view_id is not None:
        pairs.append(("view", str(view_id)))
    base = url_for(LIST_ENDPOINTS[entity])
    return f"{base}?{urlencode(pairs)}" if pairs else base


def list_context(entity: str) -> dict[str, Any]:
    """What the list page shows of the saved views (one query): each view with its link,
    whether it is the one open (``?view=<id>``) and whether this user may change it; the
    open view, and the query string "Save view" would save."""
    me = common.current_user_id()
    manage = common.has_permission("views:manage")
    current = query_of(request.args)
    wanted = request.args.get("view", "")
    items = []
    active = None
    for view in domain.views_for(entity, me):
        item = {
            "id": view.id,
            "name": view.name,
            "shared": view.shared,
            "mine": view.owner_id == me,
            "version": view.version,
            "url": list_url(entity, view.query, view.id),
            "active": str(view.id) == wanted,
            "may_change": view.owner_id == me or (view.shared and manage),
            # the list shows what the view says, or the user changed a filter since
            "modified": str(view.id) == wanted and {k: sorted(v) for k, v in view.query.items()} != {k: sorted(v) for k, v in current.items()},
        }
        items.append(item)
        if item["active"]:
            active = item
    return {
        "saved_views": items,
        "active_view": active,
        "view_entity": entity,
        "view_query": urlencode([(k, v) for k, values in current.items() for v in values]),
        "all_url": url_for(LIST_ENDPOINTS[entity]),
    }


def posted_query(entity: str) -> dict[str, list[str]]:
    """The form's ``query`` (a list's query string) as the API checks it."""
    raw = MultiDict(parse_qsl(request.form.get("query", ""), keep_blank_values=False))
    return views_api.clean_query(entity, {k: raw.getlist(k) for k in raw})


def messages(exc: DomainError) -> str:
    if isinstance(exc, Invalid):
        parts = []
        for key, texts in exc.errors.items():
            label = "Name" if key == "name" else ("Filter " + key.removeprefix("query.")) if key.startswith("query.") else ""
            text = " ".join(texts if isinstance(texts, list) else [str(texts)])
            parts.append(f"{label}: {text}" if label else text)
        return "The view was not saved. " + " ".join(parts)
    if isinstance(exc, Conflict):
        return "You have a view of this name for this list already: choose another name, or open it and update it."
    if isinstance(exc, StaleVersion):
        return "Someone changed this view meanwhile; look at it again, then update it if you still want to."
    return str(exc)


def entity_or_400() -> str:
    entity = request.form.get("entity", "")
    if entity not in LIST_ENDPOINTS:
        abort(400, "Unknown list.")
    return entity


@bp.route("", methods=["POST"])
def create() -> Any:
    """Save the list's current filters and sort as a new view."""
    require("records:read")
    entity = entity_or_400()
    shared = request.form.get("shared") in ("1", "on", "true")
    back = list_url(entity, query_of(MultiDict(parse_qsl(request.form.get("query", "")))))
    if shared and not common.has_permission("records:write"):
        flash(views_api.SHARING_NEEDS)
        return redirect(back)
    try:
        view = domain.create(g.user.id, entity, request.form.get("name", ""), posted_query(entity), shared)
    except DomainError as exc:
        flash(messages(exc))
        return redirect(back)
    flash(f"View “{view.name}” saved{' for everyone' if view.shared else ''}.")
    return redirect(list_url(entity, view.query, view.id))


def changeable(view_id: int) -> domain.SavedView:
    view = domain.view_or_not_found(view_id, g.user.id)
    domain.check_may_change(view, g.user.id, common.has_permission("views:manage"))
    return view


def form_version() -> int:
    try:
        return int(request.form.get("version", ""))
    except ValueError:
        return -1  # no version sent: treat as stale rather than overwrite


@bp.route("/<int:view_id>/update", methods=["POST"])
def update(view_id: int) -> Any:
    """Replace the view's filters and sort with the list's current ones."""
    require("records:read")
    try:
        view = changeable(view_id)
        view = domain.update(view, {"query": posted_query(view.entity)}, if_version=form_version())
    except (NotFound, Forbidden) as exc:
        return not_yours(exc)
    except DomainError as exc:
        flash(messages(exc))
        entity = domain.SavedView.get_by_id(view_id).entity
        return redirect(list_url(entity, query_of(MultiDict(parse_qsl(request.form.get("query", "")))), view_id))
    flash(f"View “{view.name}” updated.")
    return redirect(list_url(view.entity, view.query, view.id))


@bp.route("/<int:view_id>/delete", methods=["POST"])
def delete(view_id: int) -> Any:
    require("records:read")
    try:
        view = changeable(view_id)
        domain.delete(view, if_version=form_version())
    except (NotFound, Forbidden) as exc:
        return not_yours(exc)
    except DomainError as exc:
        flash(messages(exc))
        return redirect(url_for(LIST_ENDPOINTS[domain.SavedView.get_by_id(view_id).entity]))
    flash(f"View “{view.name}” deleted.")
    return redirect(list_url(view.entity))


def not_yours(exc: DomainError) -> Any:
    abort(404 if isinstance(exc, NotFound) else 403, str(exc))
