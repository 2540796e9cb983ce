"""/app/admin/custom-fields: the tenant's own fields on leads, contacts, companies, deals.

Same rules as /api/v1/custom-fields, by the same code: ``CustomFieldSchema`` validates
the forms and ``check`` / ``leftover_values`` of crmcore.api.custom_fields refuse what
the API refuses (choices only for choice fields, no dropping a choice records use, no
reusing a key whose old values would not fit); their 422/409 messages are shown inline.
A field's entity, key and kind are fixed on this page once it exists.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from crmcore.api.custom_fields import CustomFieldSchema, check, leftover_values, stored_values
from crmcore.entities import service
from crmcore.entities.models import CUSTOM_FIELD_KINDS, TAGGABLE, CustomField
from crmcore.web.admin import admin_only, form_version, validate_form
from crmcore.web.forms import api_errors

bp = admin_only(Blueprint("admin_fields", __name__, url_prefix="/app/admin/custom-fields"))

ENTITY_LABELS = {"lead": "Leads", "contact": "Contacts", "company": "Companies", "deal": "Deals"}
KIND_LABELS = {"text": "Text", "number": "Number", "date": "Date", "choice": "Choice (one of a list)", "boolean": "Yes / no"}
STALE = "Someone else changed this field meanwhile. Reload the page to see their change, then try again."


def typed_choices() -> dict[str, list[str]]:
    """The choices textarea, one choice per line (so a choice may contain a comma)."""
    if "choices" not in request.form:
        return {}
    return {"choices": [line.strip() for line in request.form["choices"].splitlines() if line.strip()]}


def field_or_404(field_id: int) -> CustomField:
    field = CustomField.get_or_none(CustomField.id == field_id)  # tenant-scoped
    if field is None:
        abort(404, f"No custom field {field_id} in this tenant.")
    return field


def page_context() -> dict[str, Any]:
    return {"entities": [(e, ENTITY_LABELS.get(e, e)) for e in TAGGABLE], "kinds": [(k, KIND_LABELS.get(k, k)) for k in CUSTOM_FIELD_KINDS], "kind_labels": KIND_LABELS, "entity_labels": ENTITY_LABELS}


@bp.route("/")
def index():
    """Every custom field, grouped by entity."""
    by_entity: dict[str, list[CustomField]] = {e: [] for e in TAGGABLE}
    for field in CustomField.select().order_by(CustomField.entity, CustomField.key):
        by_entity.setdefault(field.entity, []).append(field)
    return render_template("crm/admin/fields.html", by_entity=by_entity, **page_context())


@bp.route("/new", methods=["GET", "POST"])
def create():
    """Define a custom field."""
    errors: dict[str, list[str]] = {}
    form: dict[str, Any] = {"entity": request.args.get("entity", TAGGABLE[0]), "kind": "text"}
    status = 200
    if request.method == "POST":
        data, errors = validate_form(CustomFieldSchema(), values=typed_choices())
        form, status = data, 422
        if not errors:
            try:
                check(data)
                existing = CustomField.get_or_none((CustomField.entity == data["entity"]) & (CustomField.key == data["key"]))
                if existing is not None:
                    errors, status = {"key": [f"{ENTITY_LABELS[data['entity']]} already have a custom field with the key “{data['key']}”."]}, 409
                else:
                    unfit = leftover_values(CustomField(**data))
                    if unfit:
                        errors, status = {"_form": [f"{ENTITY_LABELS[data['entity']]} still hold values under “{data['key']}” from a deleted field that are not valid {data['kind']} values: {', '.join(map(str, unfit[:10]))}. Choose another key or kind."]}, 409
                    else:
                        field = service.create(CustomField, data)
                        flash(f"Custom field “{field.label}” added to {ENTITY_LABELS[field.entity].lower()}.")
                        return redirect(url_for(".index") + f"#entity-{field.entity}")
            except HTTPException as exc:  # check()'s 422/409
                errors, status = api_errors(exc), exc.code or 422
            except service.Conflict:  # created meanwhile by someone else
                errors, status = {"key": ["A field with this key was just added by someone else."]}, 409
    return render_template("crm/admin/field_form.html", field=None, errors=errors, form=form, **page_context()), status


@bp.route("/<int:field_id>", methods=["GET", "POST"])
def edit(field_id: int):
    """Change a field's label, required flag and (choice fields) choices."""
    field = field_or_404(field_id)
    errors: dict[str, list[str]] = {}
    form: dict[str, Any] = {"label": field.label, "required": field.required, "choices": field.choices or []}
    status = 200
    if request.method == "POST":
        fields_here = ("label", "required", "choices") if field.kind == "choice" else ("label", "required")
        data, errors = validate_form(CustomFieldSchema(only=fields_here), values=typed_choices() if field.kind == "choice" else {})
        form, status = {**form, **data}, 422
        if not errors:
            try:
                check(data, field)
                changes = service.update(field, data, if_version=form_version())
            except HTTPException as exc:
                errors, status = api_errors(exc), exc.code or 422
            except service.StaleVersion:
                errors, status = {"_form": [STALE]}, 409
            else:
                flash(f"Custom field “{field.label}” saved." if changes else "Nothing changed.")
                return redirect(url_for(".index") + f"#entity-{field.entity}")
    in_use = stored_values(field) if field.kind == "choice" else []
    return render_template("crm/admin/field_form.html", field=field, errors=errors, form=form, in_use=in_use, **page_context()), status


@bp.route("/<int:field_id>/delete", methods=["GET", "POST"])
def delete(field_id: int):
    """Delete a field after asking (values records hold stay, unchecked)."""
    field = field_or_404(field_id)
    if request.method == "POST":
        try:
            service.delete(field, if_version=form_version())
        except service.StaleVersion:
            flash(STALE)
            return redirect(url_for(".delete", field_id=field.id))
        flash(f"Custom field “{field.label}” deleted.")
        return redirect(url_for(".index") + f"#entity-{field.entity}")
    return render_template("crm/admin/confirm.html", title=f"Delete the custom field “{field.label}”?",
                           message=f"{ENTITY_LABELS[field.entity]} no longer show or check “{field.key}”. Values records already hold stay stored in their custom data, so a new field with the same key would see them again.",
                           action=url_for(".delete", field_id=field.id), button="Delete field", cancel=url_for(".index") + f"#entity-{field.entity}", version=field.version)
