"""Tenant isolation, the acceptance test: "a second tenant sees none of the first tenant's
data through any endpoint (a test walks every operation of the OpenAPI document with a
token of the other tenant)".

The walk is driven by /api/v1/openapi.json alone, so a resource added later (a core
module in crmcore/api/, or a plugin's API: both tenants enable every installed plugin)
is walked without touching this file:

1. **Seed.** Tenant ``acme`` (and tenant ``other``, for the mixed requests below) gets
   records of every kind through the API: every POST that answers 201 is called with a
   body built from its request schema (required fields, naming fields, ids of records
   made before; a 422 naming a missing field is retried with that field). Ids are
   learnt from the answers, by parameter name (``lead_id`` ...). Every string carries
   the tenant's marker, so a leaked value is found wherever it appears.
2. **No credentials.** Every operation, without a token: 401 (operations documented
   without a security requirement are public and skipped).
3. **Cross tenant.** Every operation whose path has a parameter, called by an admin of
   ``other`` with acme's ids (every enum value of a string parameter such as ``entity``):
   404, never 2xx, never 403 (that would confirm the record exists), never 500. After each
   call that is not a GET, every acme record reads back (with acme's token) exactly as
   before.
4. **Lists, and acme's ids smuggled in.** Every operation without path parameters is
   called by ``other``; and every operation whose query or body takes ids is called by
   ``other`` on its own records with one of acme's ids at a time in one field
   (``lead_id``, ``ids``, ``stage_ids``, an integer whose description names a kind, such
   as ``move_to``: one at a time, because a field refused would hide another that is not
   checked). No 500, no acme marker in any answer, no acme id in a successful JSON
   answer, acme unchanged. Then every GET of ``other`` once more: nothing of acme's has
   been attached to other's records.
5. **Imports last.** Every CSV import (a POST beside an ``export.csv``) is fed acme's own
   export (ids included) by ``other``: acme unchanged, other's new records point at none
   of acme's.
6. Every GET of acme answers as it did before the walk, and none holds anything of
   other's (this covers the GETs that change by themselves, such as the audit log). No
   request ever got a 500.

A failure lists every offending operation with its status and the start of its body.
Things the walk could not do (a resource it could not create, a parameter it could not
fill) are printed and given as a warning: the walk then covers less; teach it
(``BODY_HINTS``) rather than skip the check.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlencode

from crmcore import db

METHODS = ("get", "put", "post", "patch", "delete")
MISSING: Any = object()
UNKNOWN_ID = 987654321

#: Optional fields always filled when creating: they carry the marker (and find leaks).
NAMING_FIELDS = {
    "name", "title", "subject", "body", "content", "text", "message", "email", "first_name",
    "last_name", "company_name", "label", "domain", "description", "job_title", "need",
}
#: Integers that are never record ids whatever their description says.
NUMERIC_NAMES = {
    "limit", "offset", "page", "per_page", "order", "position", "probability", "value",
    "version", "count", "size", "days", "duration_seconds", "expected_days", "amount", "min", "max",
}
#: Path parameters that say nothing of their kind: the collection before them does.
GENERIC_ID_PARAMS = ("id", "record_id", "item_id")
#: Id fields whose kind is named by a sibling field (``entity``/``collection``).
POLYMORPHIC = {"entity_id", "record_id", "object_id", "target_id"}
ENTITY_FIELDS = ("entity", "collection", "entity_type", "record_type")
#: Fields that hold the id of a user (each side gets one user, made directly).
USER_KEYS = ("user_id", "owner_id", "assignee_id", "author_id", "changed_by_id", "actor_user_id")
#: Strings that must look a certain way.
SPECIAL_STRINGS = {
    "currency": "EUR", "timezone": "Europe/Berlin", "language": "en", "colour": "#12ab34",
    "color": "#12ab34", "phone": "+4930123456", "size": "11-50", "direction": "out",
}
#: Fields of an operation's body where the generic one is not enough, keyed by
#: "<METHOD> <path>": ``"{lead_id}"`` is replaced by an id of the tenant's, MISSING leaves
#: the field out.
BODY_HINTS: dict[str, dict[str, Any]] = {
    # before_id, after_id and position place a card in three exclusive ways: give none.
    "PUT /api/v1/pipeline/cards/{deal_id}": {"before_id": MISSING, "after_id": MISSING, "position": MISSING},
    # an endpoint on loopback (allowed by CRM_WEBHOOKS_ALLOW_PRIVATE in this test) for a real event
    "POST /api/v1/webhooks/endpoints": {"url": "http://127.0.0.1:9/hook", "event_types": ["lead_created"]},
    # a rule is checked as a whole (trigger, steps): one that is valid
    "POST /api/v1/automation/rules": {"entity": "lead", "trigger": {"type": "record_created"}, "conditions": {},
                                      "steps": [{"action": "add_tag", "params": {"tag": "walk"}}], "status": "active"},
    "PUT /api/v1/automation/rules/{rule_id}": {"entity": "lead", "trigger": {"type": "record_created"}, "conditions": {},
                                               "steps": [{"action": "add_tag", "params": {"tag": "walk"}}]},
    # a message about a lead (a reply would need a conversation first), queued, never sent
    "POST /api/v1/messages": {"channel": "email", "entity": "lead", "record_id": "{lead_id}", "conversation_id": MISSING,
                              "template_id": MISSING, "to": ["walk@example.com"], "cc": MISSING, "html": MISSING, "purpose": "sales"},
}
#: Operations that need no credentials (documented without a security requirement too).
PUBLIC_OPERATIONS: set[str] = set()


def singular(word: str) -> str:
    word = word.replace("-", "_")
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


# --------------------------------------------------------------------------- the spec


@dataclass(eq=False)
class Operation:
    method: str
    path: str
    doc: dict[str, Any]
    params: list[dict[str, Any]]

    @property
    def key(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def path_params(self) -> list[dict[str, Any]]:
        return [p for p in self.params if p.get("in") == "path"]

    @property
    def query_params(self) -> list[dict[str, Any]]:
        return [p for p in self.params if p.get("in") == "query"]

    @property
    def public(self) -> bool:
        return self.key in PUBLIC_OPERATIONS or not self.doc.get("security")

    @property
    def is_item(self) -> bool:
        """A record's own URL (``/leads/{lead_id}``)."""
        return bool(self.path_params) and self.path.endswith("}")

    def body_content(self) -> dict[str, Any]:
        return (self.doc.get("requestBody") or {}).get("content") or {}


@dataclass
class Ctx:
    """What a value is generated for: the ``entity`` chosen for the request (``lead``,
    ``leads`` ...), the kind of record its path names, whose ids it carries (``walk``:
    another tenant's, for a cross-tenant request; None: the side's own, when seeding)."""

    entity: str | None = None
    op_kind: str | None = None
    walk: Any = None


class Spec:
    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self.operations: list[Operation] = []
        for path, item in doc.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method in METHODS:
                if method in item:
                    own = [self.resolve(p) for p in item[method].get("parameters", [])]
                    names = {(p.get("in"), p.get("name")) for p in own}
                    params = own + [self.resolve(p) for p in shared if (p.get("in"), p.get("name")) not in names]
                    self.operations.append(Operation(method, path, item[method], params))
        self.paths = set(doc.get("paths", {}))
        self.kinds: set[str] = set(USER_KEYS)
        for op in self.operations:
            for p in op.path_params:
                for entity in self.enum_values(op) or [None]:
                    kind = self.path_kind(op, p["name"], entity)
                    if kind:
                        self.kinds.add(kind)

    def resolve(self, node: Any, depth: int = 0) -> Any:
        while isinstance(node, dict) and "$ref" in node and depth < 20:
            target: Any = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node, depth = target, depth + 1
        if isinstance(node, dict) and "allOf" in node:
            merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
            for sub in node["allOf"]:
                sub = self.resolve(sub, depth + 1)
                merged.setdefault("properties", {}).update(sub.get("properties", {}))
                merged["required"] = sorted(set(merged.get("required", [])) | set(sub.get("required", [])))
                for k, v in sub.items():
                    if k not in ("properties", "required"):
                        merged.setdefault(k, v)
            return merged
        return node if node is not None else {}

    def param_schema(self, param: dict[str, Any]) -> dict[str, Any]:
        """A parameter's schema, with the parameter's description (where OpenAPI 3 puts it)."""
        schema = dict(self.resolve(param.get("schema") or {}))
        if param.get("description") and not schema.get("description"):
            schema["description"] = param["description"]
        return schema

    def names_record(self, op: Operation) -> bool:
        """A path parameter names a record (an id), not only a kind or a status (an enum)."""
        return any(not self.resolve(p.get("schema") or {}).get("enum") for p in op.path_params)

    def enum_values(self, op: Operation) -> list[str]:
        """Values of the string enum parameters that pick a kind of record (``entity``)."""
        out: list[str] = []
        for p in op.params:
            schema = self.resolve(p.get("schema") or {})
            if schema.get("type") == "string" and schema.get("enum") and (p["in"] == "path" or p.get("required")):
                out += [v for v in schema["enum"] if v not in out]
        return out

    def item_param(self, collection: str) -> str:
        """The id parameter of the records a collection path holds."""
        pattern = re.compile(re.escape(collection) + r"/\{([^}]+)\}$")
        for path in sorted(self.paths):
            match = pattern.match(path)
            if match:
                return match.group(1)
        last = [s for s in collection.split("/") if s and not s.startswith("{")]
        return singular(last[-1]) + "_id" if last else "id"

    def kind_of_entity(self, entity: str | None) -> str | None:
        """``lead``, ``leads`` or ``custom-fields`` -> the id parameter of such records."""
        if not entity:
            return None
        for name in (entity, entity + "s", entity[:-1] + "ies" if entity.endswith("y") else None):
            if name and f"/api/v1/{name}" in self.paths:
                return self.item_param(f"/api/v1/{name}")
        return singular(entity) + "_id"

    def path_kind(self, op: Operation, name: str, entity: str | None) -> str | None:
        """The kind of record a path parameter names: the id parameter of the collection
        before it (``/leads/{record_id}/merge`` -> ``lead_id``)."""
        schema = self.resolve(next((p.get("schema") for p in op.path_params if p["name"] == name), {}) or {})
        if schema.get("type") == "string":
            return None
        if name.endswith("_id") and name not in GENERIC_ID_PARAMS:
            return name  # /boards/{pipeline_id}/columns/{stage_id}: the name says the kind
        prefix = op.path.split("/{" + name + "}")[0]
        for p in op.path_params:
            values = self.resolve(p.get("schema") or {}).get("enum")
            if values:
                prefix = prefix.replace("{" + p["name"] + "}", entity if entity in values else values[0])
        if "{" in prefix.rsplit("/", 1)[-1]:
            return name
        return self.item_param(prefix)

    def op_kind(self, op: Operation, entity: str | None) -> str | None:
        ints = [p["name"] for p in op.path_params if self.resolve(p.get("schema") or {}).get("type") != "string"]
        return self.path_kind(op, ints[-1], entity) if ints else None

    def json_schema(self, op: Operation) -> dict[str, Any] | None:
        content = op.body_content()
        if "application/json" in content:
            return self.resolve(content["application/json"].get("schema") or {})
        return None

    def entities(self, op: Operation) -> list[str | None]:
        """The values to try for what picks a kind of record: an enum path (or required
        query) parameter, or an enum ``entity`` field of the body."""
        choices = self.enum_values(op)
        body = self.json_schema(op)
        if body:
            for name in ENTITY_FIELDS:
                prop = self.resolve((body.get("properties") or {}).get(name) or {})
                if prop.get("enum"):
                    choices += [v for v in prop["enum"] if v not in choices]
        return choices or [None]

    def id_kind(self, name: str, schema: dict[str, Any], ctx: Ctx, guess: bool) -> str | None:
        """The kind (``lead_id`` ...) whose ids a field or query parameter takes, else None.
        ``guess``: also integers not named ``*_id`` whose description names a kind
        (``move_to``: "A stage of the same pipeline ...")."""
        if name in POLYMORPHIC or name in ("id", "ids"):
            return self.kind_of_entity(ctx.entity) if ctx.entity else ctx.op_kind
        if name.endswith("_ids"):
            return self.id_kind(name[:-1], schema, ctx, guess)
        if name.endswith("_id") and name in self.kinds:
            return name
        if name.endswith("_id") or (guess and name not in NUMERIC_NAMES):
            text = (schema.get("description") or "").lower()
            mentioned = []
            for kind in self.kinds - set(USER_KEYS) - POLYMORPHIC:  # ("record" names no kind)
                match = re.search(r"\b" + re.escape(kind[:-3].replace("_", " ")) + r"s?\b", text)
                if match:
                    mentioned.append((match.start(), -len(kind), kind))
            if mentioned:
                return min(mentioned)[2]  # the kind named first ("A stage of the same pipeline")
            if name.endswith("_id"):
                return ctx.op_kind or name
        return None

    def id_fields(self, op: Operation, ctx: Ctx) -> list[tuple[str, str, dict[str, Any]]]:
        """Where a request can carry record ids outside its path: (``query`` or
        ``body``, name, schema) of each query parameter and top-level body field."""
        out = [("query", p["name"], self.param_schema(p)) for p in op.query_params if self._takes_ids(p["name"], self.param_schema(p), ctx)]
        body = self.json_schema(op) or {}
        for name, prop in (body.get("properties") or {}).items():
            prop = self.resolve(prop)
            if self._takes_ids(name, prop, ctx) or ((prop.get("type") == "object" or "properties" in prop) and self._schema_carries_ids(prop, ctx, 1)):
                out.append(("body", name, prop))
        return out

    def _takes_ids(self, name: str, schema: dict[str, Any], ctx: Ctx) -> bool:
        if schema.get("readOnly"):
            return False
        if schema.get("type") == "array":
            items = self.resolve(schema.get("items") or {})
            return items.get("type") == "integer" and self.id_kind(name, {**items, **schema}, ctx, guess=True) is not None
        return schema.get("type") == "integer" and self.id_kind(name, schema, ctx, guess=True) is not None

    def _schema_carries_ids(self, schema: Any, ctx: Ctx, depth: int) -> bool:
        schema = self.resolve(schema)
        if depth > 3:
            return False
        for name, prop in (schema.get("properties") or {}).items():
            prop = self.resolve(prop)
            if self._takes_ids(name, prop, ctx):
                return True
            if (prop.get("type") == "object" or "properties" in prop) and self._schema_carries_ids(prop, ctx, depth + 1):
                return True
        return False

    def ids_in(self, data: Any, context: str | None) -> Iterator[tuple[str, Any]]:
        """(kind, value) of every id in an answer: ``id`` under the kind of the list or
        record it is in, ``lead_id`` as itself, ``entity_id`` by its ``entity``."""
        if isinstance(data, list):
            for item in data:
                yield from self.ids_in(item, context)
        elif isinstance(data, dict):
            for key, value in data.items():
                if key == "id":
                    if context and isinstance(value, int):
                        yield context, value
                elif key in POLYMORPHIC:
                    entity = next((data[f] for f in ENTITY_FIELDS if isinstance(data.get(f), str)), None)
                    if entity and isinstance(value, int):
                        yield self.kind_of_entity(entity), value
                elif key.endswith("_id") and isinstance(value, int):
                    yield key, value
                elif key.endswith("_ids") and isinstance(value, list):
                    for v in value:
                        if isinstance(v, int):
                            yield key[:-1], v
                elif key == "items":
                    yield from self.ids_in(value, context)
                elif isinstance(value, (dict, list)):
                    yield from self.ids_in(value, self.kind_of_entity(key) if key not in ("custom", "errors") else None)


# --------------------------------------------------------------------------- one tenant's side


@dataclass
class Answer:
    status: int
    text: str
    json: Any


class Side:
    """One tenant as the walk uses it: an admin token, the ids and strings it learnt."""

    def __init__(self, env: Any, slug: str, spec: Spec):
        from crmcore import auth

        self.env, self.slug, self.spec = env, slug, spec
        self.mark = f"{slug}walk{uuid.uuid4().hex[:8]}"
        self.ids: dict[str, list[int]] = {}
        self.strings: dict[str, list[str]] = {}
        self.counter = itertools.count(1)
        self.client = env.client(slug)
        self.token = env.token(slug, "admin")
        with db.database.connection_context():
            user = auth.create_user(env.tenant(slug), f"{self.mark}@{self.mark}.example.com", "walk-pw-123456", role="agent", name=f"{self.mark} user")
        for key in USER_KEYS:
            self.add_id(key, user.id)

    # -- requests

    def request(self, method: str, url: str, *, body: Any = MISSING, token: bool = True, content_type: str | None = None) -> Answer:
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {self.token}"} if token else {}}
        if body is not MISSING:
            raw = body.encode() if isinstance(body, str) else body
            if content_type == "text/csv":
                kwargs.update(data=raw, content_type="text/csv")
            elif content_type == "multipart/form-data":
                kwargs.update(data={"file": (io.BytesIO(raw), "walk.csv")}, content_type="multipart/form-data")
            else:
                kwargs["json"] = body
        response = self.client.open(url, method=method.upper(), **kwargs)
        text = response.get_data(as_text=True)
        try:
            data = json.loads(text) if "json" in (response.content_type or "") else None
        except ValueError:
            data = None
        return Answer(response.status_code, text, data)

    # -- what it knows

    def add_id(self, kind: str | None, value: Any) -> None:
        if kind and isinstance(value, int) and not isinstance(value, bool) and value > 0:
            known = self.ids.setdefault(kind, [])
            if value not in known:
                known.append(value)

    def first_id(self, kind: str | None) -> int | None:
        return (self.ids.get(kind) or [None])[0] if kind else None

    def all_ids(self) -> set[tuple[str, int]]:
        return {(k, v) for k, vs in self.ids.items() for v in vs}

    def harvest(self, data: Any, context: str | None) -> None:
        """Learn ids (by kind) and the strings that string path parameters take."""
        for kind, value in self.spec.ids_in(data, context):
            self.add_id(kind, value)
        self._strings(data)

    def _strings(self, data: Any) -> None:
        if isinstance(data, list):
            for item in data:
                self._strings(item)
        elif isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, str) and key in self.spec_string_params():
                    self.strings.setdefault(key, []).append(value)
                else:
                    self._strings(value)

    def spec_string_params(self) -> set[str]:
        return {p["name"] for op in self.spec.operations for p in op.path_params if self.spec.resolve(p.get("schema") or {}).get("type") == "string" and not self.spec.resolve(p.get("schema") or {}).get("enum")}

    # -- values

    def string(self, name: str, schema: dict[str, Any]) -> str:
        n = next(self.counter)
        fmt = schema.get("format")
        if fmt == "email" or name == "email" or name.endswith("_email"):
            candidates = [f"{self.mark}{n}@{self.mark}.example.com"]
        elif fmt == "date-time" or name.endswith("_at"):
            candidates = ["2031-02-03T04:05:06Z"]
        elif fmt == "date" or name.endswith("_date"):
            candidates = ["2031-02-03"]
        elif fmt == "decimal":
            candidates = ["12.50"]
        elif fmt in ("uri", "url") or name in ("website", "url"):
            candidates = [f"https://{self.mark}.example.com/"]
        elif name == "domain":
            candidates = [f"{self.mark}{n}.example.com"]
        elif name in SPECIAL_STRINGS:
            candidates = [SPECIAL_STRINGS[name]]
        elif isinstance(schema.get("example"), str):  # a field checked against a per-tenant list
            candidates = [schema["example"]]
        else:
            candidates = [f"{self.mark} {name} {n}", f"{self.mark}_{n}", f"{self.mark}{n}", "#12ab34", "+4930123456", "EUR", "en"]
        if schema.get("pattern"):
            fitting = [c for c in candidates + [f"{self.mark}_{n}", f"{self.mark}{n}", "#12ab34"] if re.fullmatch(schema["pattern"], c)]
            candidates = fitting or candidates
        value = candidates[0]
        if "maxLength" in schema:
            value = value[: schema["maxLength"]]
        if len(value) < schema.get("minLength", 0):
            value += "x" * (schema["minLength"] - len(value))
        return value

    def value(self, schema: Any, name: str, ctx: Ctx, include: set[str], depth: int) -> Any:
        """A value for ``schema``; ids are ``ctx.walk``'s (a cross-tenant request) or
        this side's own (seeding)."""
        schema = self.spec.resolve(schema)
        if schema.get("readOnly") or depth > 4:
            return MISSING
        ids_from = ctx.walk or self
        guess = ctx.walk is not None
        if name in ENTITY_FIELDS and ctx.entity and ctx.entity in (schema.get("enum") or []):
            return ctx.entity
        if "enum" in schema:
            values = [v for v in schema["enum"] if v is not None]
            return values[0] if values else MISSING
        kind_type = schema.get("type")
        if kind_type == "integer":
            kind = self.spec.id_kind(name, schema, ctx, guess)
            if kind is not None:
                found = ids_from.ids.get(kind, [])
                if kind == ctx.op_kind and len(found) > 1:
                    return found[1]  # not the record the path names ("merge it into itself")
                return found[0] if found else MISSING
            return schema.get("minimum", 1) if schema.get("minimum", 1) >= 0 else 1
        if kind_type == "number":
            return schema.get("minimum", 1)
        if kind_type == "boolean":
            return False
        if kind_type == "string":
            return self.string(name, schema)
        if kind_type == "array":
            items = self.spec.resolve(schema.get("items") or {})
            if items.get("type") == "integer":
                kind = self.spec.id_kind(name, {**items, **schema}, ctx, guess)
                if kind is not None:
                    found = ids_from.ids.get(kind, [])[:3]
                    return list(found) if found else MISSING
                return [1]
            if items.get("type") == "string":
                return [self.string(singular(name), items)]
            if schema.get("minItems"):
                one = self.value(items, singular(name), ctx, set(), depth + 1)
                return [one] if one is not MISSING else MISSING
            return MISSING
        if kind_type == "object" or "properties" in schema:
            return self.obj(schema, ctx, include if depth == 0 else set(), depth + 1)
        return MISSING

    def obj(self, schema: Any, ctx: Ctx, include: set[str] = frozenset(), depth: int = 0) -> Any:
        """A body for ``schema``: its required fields, naming fields, the fields in
        ``include``, and (for a cross-tenant request) every field that takes ids."""
        schema = self.spec.resolve(schema)
        required = set(schema.get("required", []))
        out: dict[str, Any] = {}
        for name, prop in (schema.get("properties") or {}).items():
            prop = self.spec.resolve(prop)
            wanted = name in required or name in NAMING_FIELDS or name in include or (name in ENTITY_FIELDS and ctx.entity)
            if wanted or (ctx.walk is not None and self.spec._takes_ids(name, prop, ctx)):
                value = self.value(prop, name, ctx, include, depth)
                if value is not MISSING:
                    out[name] = value
        return out

    def body(self, op: Operation, ctx: Ctx, include: set[str] = frozenset()) -> Any:
        schema = self.spec.json_schema(op)
        if schema is None:
            return MISSING
        body = self.obj(schema, ctx, include)
        for key, value in BODY_HINTS.get(op.key, {}).items():
            if value is MISSING:
                body.pop(key, None)
            else:
                body[key] = self.first_id(value[1:-1]) if isinstance(value, str) and value.startswith("{") else value
        return body

    def url(self, op: Operation, entity: str | None, *, query_ids_from: "Side | None" = None, only: str | None = None) -> tuple[str, list[str]]:
        """The operation's URL with this side's ids in the path; the query has the
        required parameters and, with ``query_ids_from``, that tenant's ids wherever a
        parameter takes ids (``only``: in that parameter only). Returns the URL and the
        path parameters it could not fill."""
        path, missing = op.path, []
        for p in op.path_params:
            name, schema = p["name"], self.spec.resolve(p.get("schema") or {})
            value: Any
            if schema.get("type") == "string":
                if schema.get("enum"):
                    value = entity if entity in schema["enum"] else schema["enum"][0]
                else:
                    value = (self.strings.get(name) or [None])[0]
                    if value is None:
                        missing.append(name)
                        value = f"{self.mark}-unknown"
            else:
                value = self.first_id(self.spec.path_kind(op, name, entity))
                if value is None:
                    missing.append(name)
                    value = UNKNOWN_ID
            path = path.replace("{" + name + "}", str(value))
        ctx = Ctx(entity, self.spec.op_kind(op, entity), query_ids_from)
        query: list[tuple[str, Any]] = []
        for p in op.query_params:
            name, schema = p["name"], self.spec.param_schema(p)
            value = MISSING
            if query_ids_from is not None and only in (None, name) and self.spec._takes_ids(name, schema, ctx):
                value = self.value(schema, name, ctx, set(), 1)
            if value is MISSING and p.get("required"):
                value = entity if name in ENTITY_FIELDS and entity else self.value(schema, name, Ctx(entity, ctx.op_kind), set(), 1)
            if value is MISSING:
                continue
            for v in value if isinstance(value, list) else [value]:
                query.append((name, str(v).lower() if isinstance(v, bool) else v))
        if query:
            path += "?" + urlencode(query)
        return path, missing


# --------------------------------------------------------------------------- the walk


@dataclass
class Report:
    problems: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seen: dict[str, set[str]] = field(default_factory=dict)
    unstable: list[str] = field(default_factory=list)

    def problem(self, category: str, line: str) -> None:
        if line not in self.problems.setdefault(category, []):
            self.problems[category].append(line)

    def note(self, line: str) -> None:
        if line not in self.notes:
            self.notes.append(line)

    def covered(self, phase: str, op: Operation) -> None:
        self.seen.setdefault(phase, set()).add(op.key)

    def text(self) -> str:
        out = []
        for category, lines in self.problems.items():
            out.append(f"{category} ({len(lines)}):")
            out += [f"  - {line}" for line in lines]
        return "\n".join(out)


def short(answer: Answer) -> str:
    return re.sub(r"\s+", " ", answer.text)[:300]


def comparable(answer: Answer) -> Any:
    return answer.json if answer.json is not None else answer.text


def shown(body: Any) -> str:
    return "" if body is MISSING else " " + json.dumps(body)[:200]


class Walk:
    def __init__(self, env: Any, spec_doc: dict[str, Any]):
        self.spec = Spec(spec_doc)
        self.acme = Side(env, "acme", self.spec)
        self.other = Side(env, "other", self.spec)
        self.report = Report()

    # -- checks

    def check_500(self, who: str, method: str, url: str, answer: Answer, body: Any = MISSING) -> None:
        if answer.status >= 500:
            self.report.problem("answered 5xx", f"{method.upper()} {url}{shown(body)} as {who}: {answer.status} {short(answer)}")

    def leaks(self, answer: Answer, context: str | None) -> list[str]:
        """What of acme's an answer to ``other`` reveals: acme's marker anywhere; in a
        successful JSON answer, ids of acme's records under their kind (``lead_id``, or
        ``id`` in a list of leads): a record of other's that now points at one of
        acme's is as wrong as acme's record itself."""
        found = []
        if self.acme.mark in answer.text:
            at = answer.text.index(self.acme.mark)
            found.append(f"acme's data in a {answer.status} answer: ...{answer.text[max(0, at - 80): at + 40]}...")
        if answer.json is not None and 200 <= answer.status < 300:
            acme_ids, other_ids = self.acme.all_ids(), self.other.all_ids()
            for kind, value in self.spec.ids_in(answer.json, context):
                if (kind, value) in acme_ids and (kind, value) not in other_ids:
                    found.append(f"acme's {kind} {value} in a {answer.status} answer: {short(answer)}")
        return found

    def list_context(self, op: Operation, entity: str | None) -> str | None:
        """The kind of the records a GET answers with (a list's items, or one record)."""
        if op.is_item:
            return self.spec.path_kind(op, op.path_params[-1]["name"], entity)
        last = op.path.rsplit("/", 1)[-1]
        if "." in last:
            return None
        path = op.path
        for p in op.path_params:
            values = self.spec.resolve(p.get("schema") or {}).get("enum")
            if values:
                path = path.replace("{" + p["name"] + "}", entity if entity in values else values[0])
        return self.spec.item_param(path)

    # -- 1. seed

    def learn(self, side: Side) -> None:
        """GET every list and record the side can address, and learn ids from them."""
        for op in self.spec.operations:
            if op.method != "get":
                continue
            for entity in self.spec.entities(op):
                url, missing = side.url(op, entity)
                if missing:
                    continue
                answer = side.request("get", url)
                self.check_500(side.slug, "get", url, answer)
                if answer.status == 200 and answer.json is not None:
                    side.harvest(answer.json, self.list_context(op, entity))

    def seed(self, side: Side) -> None:
        creators = [op for op in self.spec.operations if op.method == "post" and "201" in op.doc.get("responses", {}) and self.spec.json_schema(op) is not None]
        self.learn(side)
        pending = creators + creators  # two of each kind (merges need two)
        for _round in range(4):
            failed = [op for op in pending if not self.create(side, op)]
            progress = len(failed) < len(pending)
            pending = failed
            if not pending or not progress:
                break
            self.learn(side)
        for op in pending:
            self.create(side, op, report=side is self.acme)
        self.learn(side)

    def create(self, side: Side, op: Operation, report: bool = False) -> bool:
        url, missing = side.url(op, None)
        if missing:
            if report:
                self.report.note(f"could not create through {op.key}: no id for {', '.join(missing)}")
            return False
        include: set[str] = set()
        entity = self.spec.entities(op)[0]
        ctx = Ctx(entity, self.spec.op_kind(op, entity))
        answer, body = None, MISSING
        for _attempt in range(6):
            body = side.body(op, ctx, include)
            answer = side.request("post", url, body=body)
            self.check_500(side.slug, "post", url, answer, body)
            if answer.status == 201:
                side.harvest(answer.json, self.spec.item_param(op.path))
                return True
            if answer.status == 409:
                continue  # a value clashed: the next body has fresh strings
            if answer.status != 422 or not isinstance(answer.json, dict):
                break
            wanted = self._fields_asked(answer.json, op, body, side)
            if not wanted - include:
                break
            include |= wanted
        if report and answer is not None:
            self.report.note(f"could not create through {op.key}{shown(body)}: {answer.status} {short(answer)}")
        return False

    def _fields_asked(self, error: dict[str, Any], op: Operation, body: dict[str, Any], side: Side) -> set[str]:
        """Fields a 422 asks for that the body lacks and the walk can fill."""
        props = (self.spec.json_schema(op) or {}).get("properties") or {}
        messages = (error.get("errors") or {}).get("json") or {}
        wanted = {k for k in messages if k in props and k not in body}
        text = json.dumps(messages.get("_schema", "")) + " " + str(error.get("message", ""))
        for name in props:
            if name not in body and re.search(r"\b" + re.escape(name) + r"\b", text):
                if name.endswith("_id") and side.first_id(name) is None:
                    continue
                wanted.add(name)
                if name.endswith("_id"):
                    break  # one link is enough ("link it to at least one of ...")
        return wanted

    # -- acme's records, read back

    def snapshot(self, items_only: bool) -> dict[str, Any]:
        shots = {}
        for op in self.spec.operations:
            if op.method != "get" or (items_only and not op.is_item):
                continue
            for entity in self.spec.entities(op):
                url, missing = self.acme.url(op, entity)
                if missing or url in shots:
                    continue
                answer = self.acme.request("get", url)
                if answer.status == 200:
                    shots[url] = comparable(answer)
        return shots

    def changed(self, before: dict[str, Any]) -> list[str]:
        """acme's GETs in ``before`` that answer differently now; the new answer becomes
        the one to compare with, so a change is blamed on the request that made it only."""
        out = []
        for url, body in before.items():
            answer = self.acme.request("get", url)
            if answer.status != 200 or comparable(answer) != body:
                out.append(f"GET {url} now answers {answer.status} {short(answer)}")
                before[url] = comparable(answer) if answer.status == 200 else None
        return out

    # -- 2. to 6.

    def run(self) -> Report:
        report, acme, other = self.report, self.acme, self.other
        self.seed(acme)
        self.seed(other)
        first, second = self.snapshot(items_only=False), self.snapshot(items_only=False)
        unstable = {u for u in first if second.get(u) != first[u]}
        report.unstable = sorted(unstable)
        baseline = {u: b for u, b in first.items() if u not in unstable}
        records = {u: b for u, b in self.snapshot(items_only=True).items() if u in baseline}

        imports = [op for op in self.spec.operations if op.method != "get" and "application/json" not in op.body_content() and any(ct in op.body_content() for ct in ("text/csv", "multipart/form-data"))]
        for op in self.spec.operations:
            entities = self.spec.entities(op)
            # acme's own GETs must answer, or the 404s below would prove little
            if op.method == "get" and op.path_params:
                for entity in entities:
                    url, missing = acme.url(op, entity)
                    if missing:
                        report.note(f"{op.key}: acme has no {', '.join(missing)} for {entity or 'it'} (walked with id {UNKNOWN_ID})")
                        continue
                    own = acme.request("get", url)
                    self.check_500("acme", "get", url, own)
                    if not 200 <= own.status < 300:
                        report.note(f"{op.key}: acme's own GET {url} answered {own.status} {short(own)}")

            # 2. without credentials
            if not op.public:
                report.covered("no credentials", op)
                url, _ = acme.url(op, entities[0], query_ids_from=acme)
                body = acme.body(op, Ctx(entities[0], self.spec.op_kind(op, entities[0]), acme))
                answer = acme.request(op.method, url, body=body, token=False)
                self.check_500("anonymous", op.method, url, answer, body)
                if answer.status != 401:
                    report.problem("not 401 without credentials", f"{op.key} ({op.method.upper()} {url}): {answer.status} {short(answer)}")
            if op in imports:
                continue

            # 3. acme's ids in the path, other's token (a path that only picks a kind or a
            #    status, such as /pipeline/leads/board/{status}/cards, names no record)
            names_record = self.spec.names_record(op)
            if names_record:
                report.covered("cross-tenant ids", op)
                for entity in entities:
                    url, _ = acme.url(op, entity, query_ids_from=acme)
                    body = other.body(op, Ctx(entity, self.spec.op_kind(op, entity), acme))
                    answer = other.request(op.method, url, body=body)
                    self.check_500("other", op.method, url, answer, body)
                    if answer.status != 404:
                        hint = " (the walk's request may be invalid: teach BODY_HINTS)" if answer.status in (400, 422) else ""
                        report.problem("not 404 for another tenant's record", f"{op.key} ({op.method.upper()} {url}{shown(body)}): {answer.status}{hint} {short(answer)}")
                    for leak in self.leaks(answer, self.list_context(op, entity) if op.method == "get" else None):
                        report.problem("shows acme's data to other", f"{op.key} ({op.method.upper()} {url}): {leak}")
                    if op.method != "get":
                        for change in self.changed(records):
                            report.problem("changed acme's records", f"{op.key} ({op.method.upper()} {url}{shown(body)}) by other: {change}")

            # 4. lists; and other's own requests with one of acme's ids at a time in
            #    the query or body (several at once could hide an unchecked one)
            for entity in entities:
                op_kind = self.spec.op_kind(op, entity)
                with_acme = Ctx(entity, op_kind, acme)
                probes: list[tuple[str | None, str | None, Any]] = [] if names_record else [(None, None, None)]
                probes += self.spec.id_fields(op, with_acme)
                for where, name, schema in probes:
                    url, missing = other.url(op, entity, query_ids_from=acme if where == "query" else None, only=name)
                    if missing:
                        report.note(f"{op.key}: other has no {', '.join(missing)}; its requests with acme's ids were not made")
                        break
                    body = other.body(op, Ctx(entity, op_kind))
                    if where == "body":
                        injected = other.value(schema, name, with_acme, set(), 1)
                        if injected is MISSING:
                            continue
                        body[name] = injected
                    elif where == "query" and url == other.url(op, entity)[0]:
                        continue  # acme has no id of that kind
                    report.covered("acme's ids in query or body", op)
                    answer = other.request(op.method, url, body=body)
                    self.check_500("other", op.method, url, answer, body)
                    for leak in self.leaks(answer, self.list_context(op, entity) if op.method == "get" else None):
                        report.problem("shows acme's data to other", f"{op.key} ({op.method.upper()} {url}{shown(body)}): {leak}")
                    if op.method != "get":
                        for change in self.changed(records):
                            report.problem("changed acme's records", f"{op.key} ({op.method.upper()} {url}{shown(body)}) by other: {change}")

        # nothing of acme's has become part of other's records
        for op in self.spec.operations:
            if op.method != "get":
                continue
            for entity in self.spec.entities(op):
                url, missing = other.url(op, entity)
                if missing:
                    continue
                answer = other.request("get", url)
                self.check_500("other", "get", url, answer)
                for leak in self.leaks(answer, self.list_context(op, entity)):
                    report.problem("other's records now hold acme's", f"{op.key} ({url}): {leak}")

        # 5. imports, fed acme's own export
        for op in imports:
            report.covered("imports", op)
            parent = op.path.rsplit("/", 1)[0]
            export = next((o for o in self.spec.operations if o.method == "get" and o.path.startswith(parent + "/") and o.path.endswith(".csv")), None)
            if export is None:
                report.note(f"{op.key}: no export.csv beside it to feed it; not walked")
                continue
            csv_text = acme.request("get", acme.url(export, None)[0]).text
            content_type = "text/csv" if "text/csv" in op.body_content() else "multipart/form-data"
            url, _ = other.url(op, None)
            answer = other.request(op.method, url, body=csv_text, content_type=content_type)
            if answer.status == 422 and csv_text:
                # Columns other does not have (acme's custom fields): keep other's own.
                known = next(csv.reader(io.StringIO(other.request("get", other.url(export, None)[0]).text)), [])
                rows = list(csv.reader(io.StringIO(csv_text)))
                keep = [i for i, column in enumerate(rows[0]) if column in known] if rows else []
                if rows and 0 < len(keep) < len(rows[0]):
                    out = io.StringIO()
                    csv.writer(out).writerows([[row[i] for i in keep if i < len(row)] for row in rows])
                    csv_text = out.getvalue()
                    answer = other.request(op.method, url, body=csv_text, content_type=content_type)
            self.check_500("other", op.method, url, answer)
            if not 200 <= answer.status < 300:
                report.note(f"{op.key}: acme's export was refused ({answer.status} {short(answer)}), so ids in a file were not tried")
            for change in self.changed(records):
                report.problem("changed acme's records", f"{op.key} (acme's export imported by other): {change}")

        # ... and other's records made from acme's file point at none of acme's records
        # (acme's strings are other's now: only ids are looked for)
        for op in self.spec.operations:
            if op.method != "get" or not imports:
                continue
            for entity in self.spec.entities(op):
                url, missing = other.url(op, entity)
                if missing:
                    continue
                answer = other.request("get", url)
                self.check_500("other", "get", url, answer)
                answer.text = answer.text.replace(acme.mark, "")
                for leak in self.leaks(answer, self.list_context(op, entity)):
                    report.problem("other's records now hold acme's", f"{op.key} ({url}) after importing acme's export: {leak}")

        # 6. acme's every GET answers as before, and none holds anything of other's
        #    (this covers the GETs that change by themselves too, such as the audit log)
        blamed = bool(report.problems.get("changed acme's records"))
        for change in self.changed(baseline):
            report.problem("changed acme's records", f"after the walk{' (maybe by the requests above)' if blamed else ''}: {change}")
        for url in first:
            answer = acme.request("get", url)
            if other.mark in answer.text:
                at = answer.text.index(other.mark)
                report.problem("changed acme's records", f"after the walk, GET {url} holds other's data: ...{answer.text[max(0, at - 80): at + 40]}...")
        return report


def _ints(body: Any) -> Iterator[int]:
    if isinstance(body, dict):
        for v in body.values():
            yield from _ints(v)
    elif isinstance(body, list):
        for v in body:
            yield from _ints(v)
    elif isinstance(body, int) and not isinstance(body, bool):
        yield body


# --------------------------------------------------------------------------- the tests


def test_every_operation_keeps_tenants_apart(walk_env, capsys, monkeypatch):
    monkeypatch.setenv("CRM_WEBHOOKS_ALLOW_PRIVATE", "1")
    spec = walk_env.client("acme").get("/api/v1/openapi.json")
    assert spec.status_code == 200
    walk = Walk(walk_env, spec.json)
    assert walk.spec.operations, "the OpenAPI document has no operations"
    report = walk.run()

    with capsys.disabled():
        if os.environ.get("CRM_WALK_VERBOSE") or report.notes:
            print(f"\nOpenAPI walk: {len(walk.spec.operations)} operations; acme's ids: {walk.acme.ids}")
            for url in report.unstable:
                print(f"  GET {url} answers differently each time (not compared before and after)")
            for note in report.notes:
                print("  note:", note)
    if report.notes:
        warnings.warn("the OpenAPI walk could not cover everything:\n" + "\n".join(report.notes), stacklevel=1)
    assert not report.problems, "tenant isolation broken:\n" + report.text()

    # The walk reached every operation it should have.
    secured = {op.key for op in walk.spec.operations if not op.public}
    with_ids = {op.key for op in walk.spec.operations if walk.spec.names_record(op)}
    assert secured <= report.seen.get("no credentials", set())
    assert with_ids <= report.seen.get("cross-tenant ids", set()) | report.seen.get("imports", set())
    assert {op.key for op in walk.spec.operations if not walk.spec.names_record(op)} <= report.seen.get("acme's ids in query or body", set()) | report.seen.get("imports", set())


def test_the_walk_finds_leaks(crm_env):
    """The walker itself: resources that forget the tenant are reported, precisely."""
    import flask
    from flask.views import MethodView
    from flask_smorest import Blueprint
    from marshmallow import Schema, fields

    from crmcore import hookimpl
    from crmcore.api.common import require
    from crmcore.app import create_app
    from crmcore.entities.models import Lead
    from crmcore.migrations import migrate
    from crmcore.plugins import PluginHost, PluginInfo

    leaky = Blueprint("walktest_leaky", __name__, url_prefix="/leaky")

    class NameSchema(Schema):
        name = fields.String(required=True)

    class LinkSchema(Schema):
        lead_id = fields.Integer(required=True)

    def any_lead(lead_id):
        lead = Lead.select_all_tenants().where(Lead.id == lead_id).first()
        if lead is None:
            flask.abort(404)
        return lead

    @leaky.route("/leads/<int:lead_id>")
    class AnyLead(MethodView):
        @leaky.response(200)
        @require("records:read")
        def get(self, lead_id):
            """Read any tenant's lead"""
            lead = any_lead(lead_id)
            return {"id": lead.id, "name": lead.name}

        @leaky.arguments(NameSchema)
        @leaky.response(200)
        @require("records:write")
        def patch(self, data, lead_id):
            """Rename any tenant's lead"""
            Lead.update_all_tenants(name=data["name"]).where(Lead.id == any_lead(lead_id).id).execute()
            return {"id": lead_id}

    @leaky.route("/all-names")
    class AllNames(MethodView):
        @leaky.response(200)
        @require("records:read")
        def get(self):
            """List every tenant's leads"""
            return [{"name": lead.name} for lead in Lead.select_all_tenants()]

    @leaky.route("/links")
    class Links(MethodView):
        @leaky.arguments(LinkSchema)
        @leaky.response(201)
        @require("records:write")
        def post(self, data):
            """Accept any tenant's lead id (and say so)"""
            return {"id": 1, "lead_id": any_lead(data["lead_id"]).id}, 201

    @leaky.route("/boom/<int:lead_id>")
    class Boom(MethodView):
        @leaky.response(200)
        @require("records:read")
        def get(self, lead_id):
            """Fail"""
            raise RuntimeError("boom")

    class Plugin:
        @hookimpl
        def crm_api_blueprints(self):
            return [leaky]

    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.write_tenant("other", name="Other Inc")
    host = PluginHost()
    host.discover(entry_points=False)
    plugin = Plugin()
    host.pm.register(plugin, name="walktest")
    host.infos["walktest"] = PluginInfo("walktest", "0", "", (), None, "walktest", "test", hooks_module=plugin, always_on=True)
    app = create_app(crm_env.config_dir, env={k: v for k, v in os.environ.items() if not k.startswith("CRM_")}, host=host)
    crm_env.apps.append(app)
    with app.app_context():
        migrate(host, report=lambda m: None)

    spec = crm_env.client("acme").get("/api/v1/openapi.json").json
    assert "/api/v1/leaky/leads/{lead_id}" in spec["paths"]
    # the leaky resources and what it takes to make a lead: enough, and quick
    spec["paths"] = {path: item for path, item in spec["paths"].items() if path.startswith(("/api/v1/leaky/", "/api/v1/leads"))}
    problems = Walk(crm_env, spec).run().problems
    text = "\n".join(f"{c}: {line}" for c, lines in problems.items() for line in lines)

    def reported(category: str, operation: str, *needles: str) -> bool:
        return any(line.startswith(operation + " ") and all(n in line for n in needles) for line in problems.get(category, []))

    assert reported("not 404 for another tenant's record", "GET /api/v1/leaky/leads/{lead_id}", ": 200 "), text
    assert reported("shows acme's data to other", "GET /api/v1/leaky/leads/{lead_id}", "acme's data"), text
    assert reported("not 404 for another tenant's record", "PATCH /api/v1/leaky/leads/{lead_id}", ": 200 "), text
    assert reported("changed acme's records", "PATCH /api/v1/leaky/leads/{lead_id}", "by other"), text
    assert reported("shows acme's data to other", "GET /api/v1/leaky/all-names", "acme's data"), text
    assert reported("shows acme's data to other", "POST /api/v1/leaky/links", "acme's lead_id"), text
    assert any("GET /api/v1/leaky/boom/" in line and ": 500 " in line for line in problems.get("answered 5xx", [])), text
    # and the correct resources (leads) are not blamed: the walk is not noisy
    assert not [line for lines in problems.values() for line in lines if line.split(" (")[0].split(" ")[-1].startswith("/api/v1/leads")], text
