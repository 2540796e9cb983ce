"""The condition language of rules: JSON, validated when a rule is saved, evaluated by
walking the tree (no ``eval`` of anything a user typed).

A node is a group ``{"all": [nodes]}`` / ``{"any": [nodes]}`` / ``{"not": node}``, or a
comparison ``{"field": "status", "op": "eq", "value": "new"}``. Fields are the record's
columns (a link as ``owner_id``, ``stage_id``), ``tags`` (the record's tag names) and
``event.<fact>`` (what the trigger reported: ``event.threshold``, ``event.to_stage_id``).
An empty tree (``{}``) matches every record.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import peewee

MAX_NODES = 100
OPS = {
    "eq": "is", "ne": "is not", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤",
    "contains": "contains", "not_contains": "does not contain", "in": "is one of", "not_in": "is none of",
    "is_empty": "is empty", "is_not_empty": "is not empty",
}
NO_VALUE = ("is_empty", "is_not_empty")
LIST_VALUE = ("in", "not_in")
HIDDEN = {"tenant", "custom", "version", "position"}


_FIELDS: dict[type, list[str]] = {}


def record_fields(model: type) -> list[str]:
    """Field names a condition (or an update step) may name on ``model``'s records."""
    if model in _FIELDS:
        return list(_FIELDS[model])
    names = []
    for f in model._meta.sorted_fields:
        if f.name in HIDDEN:
            continue
        names.append(f.object_id_name if isinstance(f, peewee.ForeignKeyField) else f.name)
    _FIELDS[model] = names
    return list(names)


def validate(tree: Any, fields: list[str], path: str = "conditions") -> dict[str, list[str]]:
    """Errors by path (``conditions.all[1].op``); empty when the tree is valid."""
    errors: dict[str, list[str]] = {}
    count = [0]

    def walk(node: Any, where: str) -> None:
        count[0] += 1
        if count[0] > MAX_NODES:
            errors.setdefault(path, [f"At most {MAX_NODES} conditions."])
            return
        if not isinstance(node, dict):
            errors[where] = ["A condition is an object."]
            return
        groups = [k for k in ("all", "any", "not") if k in node]
        if groups:
            if len(node) != 1:
                errors[where] = ["A group has exactly one key: all, any or not."]
                return
            key = groups[0]
            if key == "not":
                walk(node["not"], f"{where}.not")
                return
            if not isinstance(node[key], list):
                errors[f"{where}.{key}"] = ["A list of conditions."]
                return
            for i, child in enumerate(node[key]):
                walk(child, f"{where}.{key}[{i}]")
            return
        unknown = set(node) - {"field", "op", "value"}
        if unknown:
            errors[where] = [f"Unknown keys: {', '.join(sorted(map(str, unknown)))}."]
            return
        field, op = node.get("field"), node.get("op")
        if not isinstance(field, str) or not (field in fields or field == "tags" or (field.startswith("event.") and len(field) > 6)):
            errors[f"{where}.field"] = [f"Unknown field {field!r}: one of {', '.join(fields)}, tags, event.<fact>."]
        if op not in OPS:
            errors[f"{where}.op"] = [f"Unknown operator {op!r}: one of {', '.join(OPS)}."]
            return
        value = node.get("value")
        if op in NO_VALUE:
            return
        if "value" not in node:
            errors[f"{where}.value"] = ["A value is required for this operator."]
        elif op in LIST_VALUE and not isinstance(value, list):
            errors[f"{where}.value"] = ["A list of values."]
        elif op not in LIST_VALUE and not isinstance(value, (str, int, float, bool)) and value is not None:
            errors[f"{where}.value"] = ["A string, number, boolean or null."]

    if tree in (None, {}):
        return errors
    walk(tree, path)
    return errors


def needs_extra(tree: Any) -> bool:
    """Whether the tree names a related record's field, a custom field or the score
    (read by :func:`crm_plugins.automation.fields.extra_values`)."""
    from crm_plugins.automation.field_paths import named

    return any(("." in n and not n.startswith("event.")) or n == "score" for n in named(tree))


def needs_tags(tree: Any) -> bool:
    if isinstance(tree, dict):
        if tree.get("field") == "tags":
            return True
        return any(needs_tags(v) for k, v in tree.items() if k in ("all", "any", "not"))
    if isinstance(tree, list):
        return any(needs_tags(n) for n in tree)
    return False


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def _compare(op: str, actual: Any, expected: Any) -> bool:
    actual, expected = _plain(actual), _plain(expected)
    if op == "is_empty":
        return actual in (None, "", [])
    if op == "is_not_empty":
        return actual not in (None, "", [])
    if op in ("in", "not_in"):
        hit = actual in expected if not isinstance(actual, list) else any(a in expected for a in actual)
        return hit if op == "in" else not hit
    if op in ("contains", "not_contains"):
        if isinstance(actual, list):
            hit = expected in actual
        elif isinstance(actual, str) and isinstance(expected, str):
            hit = expected.lower() in actual.lower()
        else:
            hit = False
        return hit if op == "contains" else not hit
    if op == "eq":
        return actual == expected or (isinstance(actual, (int, float)) and isinstance(expected, str) and str(actual) == expected)
    if op == "ne":
        return not _compare("eq", actual, expected)
    if actual is None or expected is None:
        return False
    try:
        if isinstance(actual, (int, float)) and isinstance(expected, str):
            expected = float(expected)
        return {"gt": actual > expected, "gte": actual >= expected, "lt": actual < expected, "lte": actual <= expected}[op]
    except TypeError:
        return False


def evaluate(tree: Any, values: dict[str, Any], assume_events: bool = False) -> bool:
    """Whether ``values`` (field -> value, ``tags`` a list, ``event.*`` the facts) match;
    with ``assume_events`` a comparison of an ``event.*`` fact that is absent holds."""
    if tree in (None, {}):
        return True
    if "all" in tree:
        return all(evaluate(n, values, assume_events) for n in tree["all"])
    if "any" in tree:
        return any(evaluate(n, values, assume_events) for n in tree["any"])
    if "not" in tree:
        return not evaluate(tree["not"], values, assume_events)
    if assume_events and tree["field"].startswith("event.") and tree["field"] not in values:
        return True
    return _compare(tree["op"], values.get(tree["field"]), tree.get("value"))


def values_of(record: Any, fields: list[str], tags: list[str] | None, facts: dict[str, Any]) -> dict[str, Any]:
    values = {f: getattr(record, f, None) for f in fields}
    values["tags"] = tags or []
    values.update({f"event.{k}": v for k, v in facts.items()})
    return values


def describe(tree: Any) -> str:
    """A sentence for pages ("status is new and tags contains vip")."""
    if tree in (None, {}):
        return "every record"
    for key, word in (("all", " and "), ("any", " or ")):
        if key in tree:
            return "(" + word.join(describe(n) for n in tree[key]) + ")" if len(tree[key]) > 1 else describe(tree[key][0]) if tree[key] else "every record"
    if "not" in tree:
        return f"not {describe(tree['not'])}"
    value = "" if tree["op"] in NO_VALUE else f" {tree.get('value')!r}"
    return f"{tree['field']} {OPS[tree['op']]}{value}"
