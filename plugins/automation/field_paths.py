"""What a condition may name beyond the record's own columns, and how to read it both
ways: for a few records in Python (signal receivers, the dry run: a constant number of
queries whatever the count) and as a SQL expression (sweeps over every record).

* ``<link>.<field>``: a related record's column (a deal's ``company.industry``, a lead's
  ``owner.email``, a deal's ``stage.name``); None when there is no related record.
* ``custom.<key>``: a custom field of the record (``crm_custom_field``).
* ``score``: a lead's score (the scoring plugin's, tenants with it on); None when unscored.
"""

from __future__ import annotations

from typing import Any

import peewee

from crm_plugins.automation.actions import MODELS
from crmcore import sdk
from crmcore.sdk import Company, Contact, CustomField, Lead, Stage, User, is_postgres

#: record kind -> link -> the related model
LINKS: dict[str, dict[str, type]] = {
    "lead": {"owner": User, "contact": Contact, "company": Company},
    "contact": {"owner": User, "company": Company},
    "company": {"owner": User},
    "deal": {"owner": User, "contact": Contact, "company": Company, "lead": Lead, "stage": Stage},
}
#: a user's columns a condition may read (not the password hash, not login times)
USER_FIELDS = ("name", "email", "role", "active")
_RELATED_HIDDEN = {"tenant", "custom", "version", "position", "password_hash", "last_login_at"}


def related_fields(model: type) -> list[str]:
    if model is User:
        return list(USER_FIELDS)
    return [f.object_id_name if isinstance(f, peewee.ForeignKeyField) else f.name
            for f in model._meta.sorted_fields if f.name not in _RELATED_HIDDEN]


def custom_kinds(entity: str) -> dict[str, str]:
    """The tenant's custom fields of ``entity``: key -> kind (text, number, boolean, date ...)."""
    return dict(CustomField.select(CustomField.key, CustomField.kind).where(CustomField.entity == entity).tuples())


def scoring_on(tenant: Any) -> bool:
    return tenant is not None and sdk.is_enabled(tenant, "scoring")


def extra_fields(tenant: Any, entity: str) -> list[str]:
    """The names beyond the record's columns a condition on ``entity`` may use."""
    names = [f"{link}.{name}" for link, model in LINKS[entity].items() for name in related_fields(model)]
    names += [f"custom.{key}" for key in custom_kinds(entity)]
    if entity == "lead" and scoring_on(tenant):
        names.append("score")
    return names


def named(tree: Any) -> set[str]:
    """Every field a condition tree names."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("field"), str):
                found.add(node["field"])
            for key in ("all", "any"):
                for child in node.get(key) or []:
                    walk(child)
            if "not" in node:
                walk(node["not"])

    walk(tree)
    return found


# --------------------------------------------------------------------------- Python


def _lead_scores(lead_ids: list[int]) -> dict[int, float]:
    from crm_plugins.scoring.contrib import lead_scores

    return lead_scores(lead_ids)


def extra_values(entity: str, records: list[Any], tree: Any) -> dict[int, dict[str, Any]]:
    """record id -> the extra fields ``tree`` names, for ``records``: one query per link
    named and one for the score, whatever the number of records."""
    names = named(tree)
    out: dict[int, dict[str, Any]] = {r.id: {} for r in records}
    for link, model in LINKS[entity].items():
        wanted = sorted({n.split(".", 1)[1] for n in names if n.startswith(link + ".")})
        if not wanted:
            continue
        ids = {getattr(r, f"{link}_id", None) for r in records} - {None}
        rows = {row.id: row for row in model.select().where(model.id.in_(list(ids)))} if ids else {}
        for record in records:
            row = rows.get(getattr(record, f"{link}_id", None))
            for name in wanted:
                out[record.id][f"{link}.{name}"] = getattr(row, name, None) if row is not None else None
    for name in names:
        if name.startswith("custom."):
            for record in records:
                out[record.id][name] = (getattr(record, "custom", None) or {}).get(name.removeprefix("custom."))
    if entity == "lead" and "score" in names:
        scores = _lead_scores([r.id for r in records])
        for record in records:
            out[record.id]["score"] = scores.get(record.id)
    return out


# --------------------------------------------------------------------------- SQL


def sql_field(model: type, entity: str, name: str, kinds: dict[str, str]) -> tuple[Any, str]:
    """A SQL expression of ``name`` for each row of ``model`` and its kind (text, number,
    boolean, date), or (None, "") for a name this module does not know."""
    if name.startswith("custom."):
        key = name.removeprefix("custom.")
        kind = kinds.get(key, "text")
        if is_postgres():
            text = peewee.Expression(peewee.Cast(model.custom, "jsonb"), "->>", key)
            if kind == "number":
                return peewee.Cast(text, "numeric"), "number"
            if kind == "boolean":
                return peewee.Cast(text, "boolean"), "boolean"
            return text, "text"
        return peewee.fn.json_extract(model.custom, f"$.{key}"), {"number": "number", "boolean": "boolean"}.get(kind, "text")
    if name == "score" and entity == "lead":
        from crm_plugins.scoring.contrib import lead_score_expression

        return scalar(lead_score_expression(model.id)), "number"
    link, _, column = name.partition(".")
    related = LINKS[entity].get(link)
    if related is None or not column:
        return None, ""
    field = _column(related, column)
    if field is None:
        return None, ""
    alias = related.alias(f"rel_{link}")
    return scalar(alias.select(getattr(alias, field.name)).where(alias.id == getattr(model, f"{link}_id"))), kind_of(field)


def scalar(subquery: Any) -> Any:
    """A one-value subquery as a column expression (NULL when it finds no row)."""
    return peewee.NodeList((subquery,))


def _column(model: type, name: str) -> Any:
    for f in model._meta.sorted_fields:
        if name in (f.name, getattr(f, "object_id_name", None)):
            return f
    return None


def kind_of(field: Any) -> str:
    if isinstance(field, (peewee.IntegerField, peewee.FloatField, peewee.DecimalField)) and not isinstance(field, peewee.ForeignKeyField):
        return "number"
    if isinstance(field, peewee.ForeignKeyField):
        return "number"
    if isinstance(field, peewee.BooleanField):
        return "boolean"
    if isinstance(field, peewee.DateTimeField):
        return "datetime"
    if isinstance(field, peewee.DateField):
        return "date"
    return "text"


def own_field(model: type, name: str) -> tuple[Any, str]:
    field = _column(model, name)
    if field is None:
        return None, ""
    return getattr(model, field.name), kind_of(field)


__all__ = ["LINKS", "MODELS", "custom_kinds", "extra_fields", "extra_values", "named", "own_field", "sql_field"]
