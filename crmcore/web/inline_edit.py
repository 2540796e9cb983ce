"""/app/inline: edit one common field of a record in place, from its page.

``POST /app/inline/<entity>/<id>`` with ``field``, ``value`` and ``version`` (the
version the page showed) changes that one field through the record pages' own path
(:class:`crmcore.web.records.RecordPages`: the API's schema, the domain's checks, the
one write path), so an inline edit accepts and refuses exactly what the edit form does.
It answers JSON for ``crmcore/static/inline.js``:

- 200 ``{"field", "value", "text", "version"}``: saved (``text`` as the page shows it);
- 422 ``{"errors": {field: [messages]}}``: the value does not fit;
- 409 ``{"message", "existing_url"}``: another record has this value (an email ...);
- 412 ``{"message", "value", "text", "version"}``: someone changed the record since the
  page was shown; nothing was written, and the answer carries the current value and
  version so the page can offer "keep theirs" or "save mine anyway";
- 403 / 404 as the record pages (a viewer; another tenant's or a hidden record).

:func:`inline_config` is what a record page embeds (as JSON) for the script: the fields
it may edit, their kind, options and current values.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, request
from werkzeug.datastructures import MultiDict

from crmcore.entities import service
from crmcore.entities.errors import Invalid
from crmcore.entities.models import LEAD_STATUSES, LIFECYCLE_STAGES, PRIORITIES
from crmcore.web.forms import domain_errors
from crmcore.web.records import (
    RecordPages,
    can,
    field_errors,
    fmt_money,
    form_value,
    require,
    user_names,
    user_options,
)

bp = Blueprint("inline_edit", __name__, url_prefix="/app/inline")

#: {entity: {field: (label, kind)}}: the common fields a record page edits in place.
#: kind: "text", "email", "tel", "url", "number", "money", "date" or "select".
INLINE_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "lead": {"email": ("Email", "email"), "phone": ("Phone", "tel"), "company_name": ("Company", "text"), "status": ("Status", "select"), "priority": ("Priority", "select"), "estimated_value": ("Estimated value", "money"), "owner_id": ("Owner", "select")},
    "contact": {"lifecycle_stage": ("Lifecycle stage", "select"), "timezone": ("Time zone", "text"), "language": ("Language", "text"), "owner_id": ("Owner", "select")},
    "company": {"domain": ("Domain", "text"), "industry": ("Industry", "text"), "size": ("Employees", "text"), "annual_revenue": ("Annual revenue", "money"), "owner_id": ("Owner", "select")},
    "deal": {"probability": ("Probability", "number"), "expected_close_date": ("Expected close", "date"), "priority": ("Priority", "select"), "source": ("Source", "text"), "owner_id": ("Owner", "select")},
}


def record_pages(entity: str) -> RecordPages:
    from crmcore.web import companies, contacts, deals, leads

    pages = {"lead": leads.pages, "contact": contacts.pages, "company": companies.pages, "deal": deals.pages}.get(entity)
    if pages is None:
        abort(404)
    return pages


def options(entity: str, field: str, record: Any) -> list[tuple[str, str]]:
    if field == "owner_id":
        return [("", "Nobody")] + [(str(i), n) for i, n in user_options()]
    if field == "priority":
        return [(p, p.capitalize()) for p in PRIORITIES]
    if field == "status":
        return [(s, s.capitalize()) for s in LEAD_STATUSES]
    if field == "lifecycle_stage":
        return [(s, s.capitalize()) for s in LIFECYCLE_STAGES]
    return []


def shown(entity: str, field: str, record: Any) -> tuple[str, str]:
    """``(value, text)``: the field as an input holds it, and as the page shows it."""
    value = getattr(record, field, None)
    if field == "owner_id":
        return form_value(value), user_names().get(value, "Nobody") if value else "Nobody"
    kind = INLINE_FIELDS[entity][field][1]
    if kind == "money":
        return form_value(value), fmt_money(value) or "—"
    if field in ("status", "priority", "lifecycle_stage") and value:
        return str(value), str(value)
    text = form_value(value)
    return text, text or "—"


def inline_config(entity: str, record: Any) -> dict[str, Any] | None:
    """The record page's inline-edit description (None for a user who may not write)."""
    if entity not in INLINE_FIELDS or not can("records:write"):
        return None
    fields = {}
    for name, (label, kind) in INLINE_FIELDS[entity].items():
        value, _text = shown(entity, name, record)
        fields[name] = {"label": label, "kind": kind, "value": value, "options": options(entity, name, record)}
    return {"url": f"/app/inline/{entity}/{record.id}", "version": record.version, "label": entity, "fields": fields}


def answer(status: int, **body: Any) -> Any:
    response = jsonify(body)
    response.status_code = status
    return response


@bp.route("/<entity>/<int:record_id>", methods=["POST"])
def save(entity: str, record_id: int) -> Any:
    """Change one field of the record, if it is still at the version the page showed."""
    require("records:write")
    pages = record_pages(entity)
    record = pages.get(record_id)
    field = request.form.get("field", "")
    if field not in INLINE_FIELDS[entity]:
        return answer(422, errors={"field": [f"Not a field edited in place: one of {', '.join(INLINE_FIELDS[entity])}."]})
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        return answer(422, errors={"version": ["The version of the record the page showed is missing."]})
    label = INLINE_FIELDS[entity][field][0]
    data, errors = pages.load(MultiDict({field: request.form.get("value", "").strip()}), record)
    # Only the edited field: a page's own inputs (a contact's company name) read as
    # "emptied" when absent, and no custom input was sent.
    keys = {name for name, f in pages.schema().fields.items() if (f.data_key or name) == field}
    data = {k: v for k, v in data.items() if k in keys}
    if errors:
        return answer(422, errors={field: [m for ms in errors.values() for m in ms]})
    try:
        pages.check_refs(data, record)
        saved = pages.save(data, record, version)
    except Invalid as exc:
        return answer(422, errors={field: [m for ms in field_errors(domain_errors(exc)).values() for m in ms]})
    except service.StaleVersion:
        current = pages.get(record.id)
        value, text = shown(entity, field, current)
        who = f"this {pages.label}"
        return answer(412, message=f"Someone else changed {who} while you were editing. {label} is now “{text}”.", value=value, text=text, version=current.version)
    except service.Conflict as exc:
        url = pages.url("detail", record_id=exc.existing.id) if isinstance(exc.existing, pages.model) else None
        title = pages.title(exc.existing) if isinstance(exc.existing, pages.model) else ""
        message = f"Another {pages.label} has this {label.lower()}" + (f": “{title}”." if title else ".")
        return answer(409, message=message, existing_url=url)
    saved = pages.get(record.id)
    value, text = shown(entity, field, saved)
    return answer(200, field=field, value=value, text=text, version=saved.version)
