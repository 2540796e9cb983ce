"""/app/merge/<entity>/<id>: find the likely duplicates of a lead, contact or company
and merge one into it, from its page.

The candidates are :func:`crmcore.entities.duplicates.likely` (the same or a similar
name, company or domain), or any record given by its number; the merge is the one the API
does (:func:`crmcore.entities.merge.merge`: one transaction, audited, the other record's
activities, notes, tasks, deals and tags moved, its values filling empty fields, then it
is deleted), after a confirmation page saying so. Needs ``records:merge``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, request
from werkzeug.exceptions import NotFound

from crmcore.api import common
from crmcore.entities import duplicates, service
from crmcore.entities.merge import merge
from crmcore.entities.plugin_data import PluginDataError
from crmcore.web.records import require

bp = Blueprint("merge_pages", __name__, url_prefix="/app/merge")

MERGEABLE = ("lead", "contact", "company")


def pages_of(entity: str) -> Any:
    if entity not in MERGEABLE:
        abort(404)
    from crmcore.web.inline_edit import record_pages

    return record_pages(entity)


@bp.route("/<entity>/<int:record_id>", methods=["GET", "POST"])
def merge_into(entity: str, record_id: int) -> Any:
    """List the likely duplicates; on POST confirm, then merge the chosen one."""
    require("records:merge")
    pages = pages_of(entity)
    kept = pages.get(record_id)
    candidates = [
        {"id": c["record"].id, "title": pages.title(c["record"]), "url": pages.url("detail", record_id=c["record"].id), "reasons": c["reasons"]}
        for c in duplicates.likely(entity, duplicates.fields_of(kept), common.request_context(), exclude_id=kept.id)
    ]
    context: dict[str, Any] = {"kept": kept, "candidates": candidates, "entity": entity, "other": None, "error": None}
    if request.method == "POST":
        raw = (request.form.get("other_id_typed") or request.form.get("other_id") or "").strip()
        other = None
        if not raw.isdigit():
            context["error"] = f"Choose the {pages.label} to merge into this one, or type its number."
        elif int(raw) == kept.id:
            context["error"] = f"A {pages.label} cannot be merged into itself."
        else:
            try:
                other = pages.get(int(raw))
            except NotFound:
                context["error"] = f"There is no {pages.label} number {raw} (or you may not see it)."
        if other is not None and request.form.get("confirmed") == "yes":
            return do_merge(pages, kept, other)
        context["other"] = other
    return pages.render("crm/records/merge.html", 422 if context["error"] else 200, **context)


def do_merge(pages: Any, kept: Any, other: Any) -> Any:
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        version = -1
    title = pages.title(other)
    try:
        merge(kept, other, if_version=version)
    except service.StaleVersion:
        flash(f"Not merged: this {pages.label} changed meanwhile; look at it again first.")
        return redirect(pages.url("detail", record_id=kept.id))
    except (service.Conflict, PluginDataError) as exc:
        flash(f"Not merged: {exc}")
        return redirect(pages.url("detail", record_id=kept.id))
    flash(f"Merged “{title}” into this {pages.label}.")
    return redirect(pages.url("detail", record_id=kept.id))
