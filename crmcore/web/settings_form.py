"""A plugin's settings form, generated from its marshmallow settings schema.

:func:`form_fields` describes one input per schema field (its kind follows the field's
type: checkbox, number, select, checkboxes for a list of choices, one item per line for
other lists, JSON for nested values, a text area for long text). :func:`changes_from_form`
turns the posted form into the edits of ``[settings.<plugin>]`` for
:func:`crmcore.tenant_files.with_settings`; typed values only (the TOML then holds an
integer where the schema wants one), and the schema itself judges them when the whole
file is validated.

Values the file reads from the environment (``{ "$env" = "NAME" }``) and secrets (a key
containing secret, token, password or key) are never put into the page: their input is
empty, and left empty it keeps what the file has (a checkbox or set of choices read from
the environment shows no input at all). Typing ``$env:NAME`` into a field sets such a
reference.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from marshmallow import Schema, fields, validate
from werkzeug.datastructures import MultiDict

from crmcore.tenant_files import REMOVE
from crmcore.web.admin_plugins import env_name, is_secret_key, mentions_env

ENV_REF = re.compile(r"^\$env:([A-Za-z_][A-Za-z0-9_]*)$")
_MISSING = object()


@dataclass
class FormField:
    key: str
    label: str
    kind: str  # checkbox, number, select, choices, lines, json, textarea, text, secret
    value: Any = ""  # what the input shows (a string; a list for "choices"; a bool for "checkbox")
    choices: tuple[str, ...] = ()
    step: str = "1"
    help: str = ""
    env: str | None = None  # the file reads it from this environment variable
    secret: bool = False
    errors: list[str] = field(default_factory=list)


def _choices(fld: fields.Field) -> tuple[str, ...]:
    for v in fld.validators:
        if isinstance(v, validate.OneOf):
            return tuple(str(c) for c in v.choices)
    return ()


def _max_length(fld: fields.Field) -> int | None:
    for v in fld.validators:
        if isinstance(v, validate.Length) and v.max is not None:
            return v.max
    return None


def kind_of(fld: fields.Field, key: str) -> str:
    if isinstance(fld, fields.Boolean):
        return "checkbox"
    if isinstance(fld, (fields.Integer, fields.Float, fields.Decimal)):
        return "number"
    if isinstance(fld, fields.List):
        inner = fld.inner
        if _choices(inner):
            return "choices"
        return "lines" if isinstance(inner, (fields.String, fields.Integer, fields.Float)) else "json"
    if isinstance(fld, fields.String):
        if is_secret_key(key):
            return "secret"
        if _choices(fld):
            return "select"
        return "textarea" if (_max_length(fld) or 0) > 200 else "text"
    return "json"


def is_hidden(kind: str, key: str, raw_value: Any) -> bool:
    """Whether the field's value stays out of the page (a secret, or read from the
    environment), its input empty and, left empty, keeping what the file has. The
    masking rule of the plugins page: a key containing secret, token, password or key,
    at any kind but a checkbox or a set of choices (which show no typed value)."""
    if kind in ("checkbox", "choices"):
        return mentions_env(raw_value)
    return kind == "secret" or is_secret_key(key) or mentions_env(raw_value)


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _shown(kind: str, value: Any) -> Any:
    if kind == "checkbox":
        return bool(value)
    if kind == "choices":
        return [str(v) for v in value or []]
    if kind == "lines":
        return "\n".join(str(v) for v in value or [])
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, indent=1, default=str)
    return "" if value is None else str(value)


def form_fields(schema_cls: type[Schema], effective: Mapping[str, Any], raw: Mapping[str, Any], errors: Mapping[str, list[str]] | None = None, posted: MultiDict | None = None) -> list[FormField]:
    """The inputs of the form: ``effective`` settings (defaults filled in) shown,
    ``raw`` (the file's table) consulted for ``$env`` values; after a refused save,
    ``posted`` is what the admin typed (shown again) and ``errors`` the field messages."""
    out = []
    for key, fld in schema_cls().fields.items():
        if fld.dump_only:
            continue
        kind = kind_of(fld, key)
        raw_value = raw.get(key, _MISSING)
        env = env_name(raw_value)
        hidden = is_hidden(kind, key, raw_value)
        item = FormField(key=key, label=_label(key), kind=kind, env=env, secret=hidden, errors=list((errors or {}).get(key, [])))
        if isinstance(fld, fields.Float):
            item.step = "any"
        item.choices = _choices(fld.inner) if isinstance(fld, fields.List) else _choices(fld)
        item.help = str(fld.metadata.get("description", ""))
        if hidden:
            item.value = ""
        elif posted is not None:
            item.value = (key in posted) if kind == "checkbox" else posted.getlist(key) if kind == "choices" else posted.get(key, "")
        else:
            item.value = _shown(kind, effective.get(key))
        out.append(item)
    return out


def _convert(fld: fields.Field, text: str) -> Any:
    """The TOML value for ``text`` typed into ``fld``: a number where the field wants one
    (the text itself when it is not one: the schema then says why)."""
    match = ENV_REF.match(text)
    if match:
        return {"$env": match.group(1)}
    try:
        if isinstance(fld, fields.Integer):
            return int(text)
        if isinstance(fld, (fields.Float, fields.Decimal)):
            return float(text)
    except ValueError:
        return text
    return text


def changes_from_form(schema_cls: type[Schema], form: MultiDict, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(changes for with_settings, field messages found before validation: bad JSON).

    A field is written only when it differs from the file (or, for a key the file does
    not have, from the default); an emptied text or number field is removed from the
    file, so its default applies; an empty secret or ``$env`` field keeps the file's."""
    changes: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key, fld in schema_cls().fields.items():
        if fld.dump_only:
            continue
        kind = kind_of(fld, key)
        raw_value = raw.get(key, _MISSING)
        keeps_when_empty = is_hidden(kind, key, raw_value)
        if keeps_when_empty and kind in ("checkbox", "choices"):
            continue  # read from the environment: the page shows no input for it
        if kind == "checkbox":
            if f"{key}__present" not in form:
                continue
            value: Any = key in form and form.get(key) not in ("", "0", "false", "off")
        elif kind == "choices":
            if f"{key}__present" not in form:
                continue
            value = [v for v in form.getlist(key) if v]
        else:
            if key not in form:
                continue
            text = form.get(key, "").strip() if kind != "textarea" else form.get(key, "").replace("\r\n", "\n").strip()
            if text == "":
                if keeps_when_empty:
                    continue
                value = REMOVE
            elif kind == "lines":
                value = [_convert(fld.inner, line.strip()) for line in text.splitlines() if line.strip()]
            elif kind == "json":
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    errors[key] = [f"not valid JSON: {exc.msg} (line {exc.lineno})"]
                    continue
            else:
                value = _convert(fld, text)
        if value is REMOVE:
            if raw_value is not _MISSING:
                changes[key] = REMOVE
        elif raw_value is _MISSING:
            if value != defaults.get(key, _MISSING):
                changes[key] = value
        elif value != raw_value:
            changes[key] = value
    return changes, errors


def field_errors(problems: list[Any], plugin: str) -> tuple[dict[str, list[str]], list[str]]:
    """load_tenant's problems as ({field: messages}, messages about the rest of the file)."""
    by_field: dict[str, list[str]] = {}
    other: list[str] = []
    prefix = f"settings.{plugin}."
    for problem in problems:
        if problem.key.startswith(prefix):
            rest = problem.key[len(prefix):]
            name = re.split(r"[.\[]", rest, maxsplit=1)[0]
            detail = rest[len(name):].lstrip(".")
            by_field.setdefault(name, []).append(f"{detail}: {problem.reason}" if detail else problem.reason)
        else:
            other.append(f"{problem.key}: {problem.reason}" if problem.key else problem.reason)
    return by_field, other
