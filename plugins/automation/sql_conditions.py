"""A condition tree as one SQL expression, for sweeps over every record (time triggers,
schedules): the same meaning as :func:`conditions.evaluate`, computed by the database.

Two-valued logic, as in Python: each comparison is ``COALESCE(<comparison>, FALSE)``, so
a missing value (NULL) makes ``gt`` false and ``not gt`` true, never unknown. Values are
bound parameters, converted to the field's kind first ("5" for a number field is 5); a
value that does not fit the kind compares false. Nothing a user typed becomes SQL text.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import peewee

from crm_plugins.automation import field_paths as extra
from crmcore.sdk import Tag, Tagging

TRUE = peewee.SQL("1 = 1")
FALSE = peewee.SQL("1 = 0")


class Unfit(ValueError):
    """A value that cannot be compared with a field of that kind."""


def _convert(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "number":
        if isinstance(value, bool):
            raise Unfit(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise Unfit(value) from None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1"):
            return True
        if str(value).lower() in ("false", "0"):
            return False
        raise Unfit(value)
    if kind in ("date", "datetime"):
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise Unfit(value) from None
        return moment.date() if kind == "date" else moment.replace(tzinfo=None)
    return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _two_valued(expression: Any) -> Any:
    return peewee.fn.COALESCE(expression, False) == True  # noqa: E712 - SQL, not Python


def _tags(model: type, entity: str, names: list[Any]) -> Any:
    """EXISTS a tag of the record among ``names``."""
    hit = (Tagging.select(Tagging.id).join(Tag, on=(Tagging.tag == Tag.id))
           .where((Tagging.entity == entity) & (Tagging.entity_id == model.id) & Tag.name.in_([str(n) for n in names])))
    return peewee.fn.EXISTS(hit)


def _tags_exist(model: type, entity: str) -> Any:
    return peewee.fn.EXISTS(Tagging.select(Tagging.id).where((Tagging.entity == entity) & (Tagging.entity_id == model.id)))


def _tag_comparison(model: type, entity: str, op: str, value: Any) -> Any:
    if op in ("contains", "eq"):
        return _tags(model, entity, [value])
    if op in ("not_contains", "ne"):
        return ~_tags(model, entity, [value])
    if op == "in":
        return _tags(model, entity, list(value)) if value else FALSE
    if op == "not_in":
        return ~_tags(model, entity, list(value)) if value else TRUE
    if op == "is_empty":
        return ~_tags_exist(model, entity)
    if op == "is_not_empty":
        return _tags_exist(model, entity)
    return FALSE  # a list is not greater than anything


def _comparison(column: Any, kind: str, op: str, value: Any) -> Any:
    if op in ("is_empty", "is_not_empty"):
        empty = column.is_null() | (column == "") if kind == "text" else column.is_null()
        return _two_valued(empty) if op == "is_empty" else ~_two_valued(empty)
    if op in ("in", "not_in"):
        wanted = []
        for item in value or []:
            try:
                wanted.append(_convert(kind, item))
            except Unfit:
                continue
        present = [w for w in wanted if w is not None]
        hit = column.in_(present) if present else FALSE
        if None in wanted:
            hit = hit | column.is_null()
        return _two_valued(hit) if op == "in" else ~_two_valued(hit)
    if op in ("contains", "not_contains"):
        if kind != "text" or not isinstance(value, str):
            hit = FALSE
        else:
            hit = _like(column, value)
        return _two_valued(hit) if op == "contains" else ~_two_valued(hit)
    try:
        expected = _convert(kind, value)
    except Unfit:
        return FALSE if op != "ne" else TRUE
    if op in ("eq", "ne"):
        hit = column.is_null() if expected is None else column == expected
        return _two_valued(hit) if op == "eq" else ~_two_valued(hit)
    if expected is None:
        return FALSE
    compare = {"gt": column > expected, "gte": column >= expected, "lt": column < expected, "lte": column <= expected}[op]
    return _two_valued(compare)


def _like(column: Any, text: str) -> Any:
    return peewee.NodeList((peewee.fn.LOWER(column), peewee.SQL("LIKE"), peewee.Value(_like_pattern(text)), peewee.SQL("ESCAPE '\\'")))


def compile_tree(tree: Any, model: type, entity: str, facts: dict[str, Any] | None = None, kinds: dict[str, str] | None = None) -> Any:
    """The SQL expression that holds for the rows of ``model`` that match ``tree``.
    ``facts``: ``event.<fact>`` -> a SQL expression or a plain value (absent: NULL);
    ``kinds``: the tenant's custom fields (key -> kind), read once by the caller."""
    facts = facts or {}
    kinds = extra.custom_kinds(entity) if kinds is None and any(n.startswith("custom.") for n in extra.named(tree)) else (kinds or {})

    def walk(node: Any) -> Any:
        if node in (None, {}):
            return TRUE
        if "all" in node:
            parts = [walk(n) for n in node["all"]]
            return functools.reduce(lambda a, b: a & b, parts) if parts else TRUE
        if "any" in node:
            parts = [walk(n) for n in node["any"]]
            return functools.reduce(lambda a, b: a | b, parts) if parts else FALSE
        if "not" in node:
            return ~walk(node["not"])
        name, op, value = node["field"], node["op"], node.get("value")
        if name == "tags":
            return _tag_comparison(model, entity, op, value)
        if name.startswith("event."):
            fact = facts.get(name.removeprefix("event."))
            column = fact if isinstance(fact, peewee.Node) else peewee.Value(fact)
            return _comparison(column, _kind_of_value(fact), op, value)
        column, kind = extra.own_field(model, name)
        if column is None:
            column, kind = extra.sql_field(model, entity, name, kinds)
        if column is None:
            return FALSE  # a field that went away matches nothing (validation refuses it when saved)
        return _comparison(column, kind, op, value)

    return walk(tree)


def _kind_of_value(fact: Any) -> str:
    if isinstance(fact, bool):
        return "boolean"
    if isinstance(fact, (int, float)):
        return "number"
    return "text"
