"""Form handling shared by the record pages: the API's schemas validate HTML forms.

``load_form(schema, form)`` turns submitted fields into the schema's input (empty
strings become "not given" or None, checkboxes booleans, repeated fields lists) and
returns ``(data, errors)`` with marshmallow's per-field messages, so templates show
them next to each field. ``domain_errors(exc)`` gives the per-field messages of a
domain refusal (:mod:`crmcore.entities.errors`) for the rules that need the database;
``api_errors(exc)`` does the same for an API-layer ``abort(422, errors=...)``.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from crmcore.entities.errors import Conflict, DomainError, Invalid


def form_input(schema: Schema, form: MultiDict, *, partial: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        key = field.data_key or name
        if isinstance(field, fields.Boolean):
            if key in form or f"{key}__present" in form:
                out[key] = key in form and form.get(key) not in ("", "0", "false", "off")
            continue
        if isinstance(field, fields.List):
            values = [v.strip() for v in form.getlist(key) if v.strip()]
            if len(values) == 1 and "," in values[0]:
                values = [v.strip() for v in values[0].split(",") if v.strip()]
            if key in form or f"{key}__present" in form:
                out[key] = values
            continue
        if isinstance(field, fields.Dict):
            prefix = f"{key}."
            values = {k[len(prefix):]: v for k, v in form.items() if k.startswith(prefix) and v != ""}
            if values or not partial:
                out[key] = values
            continue
        if key not in form:
            continue
        value = form.get(key, "").strip()
        if value == "":
            if field.allow_none:
                out[key] = None
            elif not partial and field.required:
                out[key] = value  # let the schema say it is required/too short
            continue
        out[key] = value
    return out


def load_form(schema: Schema, form: MultiDict, *, partial: bool = False) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate ``form`` with ``schema``: (data, {field: [messages]})."""
    raw = form_input(schema, form, partial=partial)
    try:
        return schema.load(raw, partial=partial), {}
    except ValidationError as exc:
        return raw, flatten(exc.messages)


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(flatten(value, name))
            else:
                out[name] = [str(v) for v in (value if isinstance(value, list) else [value])]
    return out


def domain_errors(exc: DomainError) -> dict[str, list[str]]:
    """Field messages of a domain refusal: Invalid's per field, a Conflict's under its
    field, anything else under ``_form``."""
    if isinstance(exc, Invalid):
        return flatten(exc.errors)
    if isinstance(exc, Conflict) and exc.field:
        return {exc.field: [str(exc)]}
    return {"_form": [str(exc)]}


def api_errors(exc: HTTPException) -> dict[str, list[str]]:
    """Field messages of an API-layer abort (422 ``errors={"json": {...}}``, 409 ...)."""
    data = getattr(exc, "data", None) or {}
    errors = data.get("errors")
    if isinstance(errors, dict):
        return flatten(errors.get("json", errors))
    message = data.get("message") or exc.description
    field = data.get("field") or "_form"
    return {field: [str(message)]}
