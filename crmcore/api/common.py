"""What every API resource shares: permissions, ETags, keyset pagination, errors.

Permissions (``require``, ``public``, ``has_permission``, ``ROLES``) are
:mod:`crmcore.permissions`'s, re-exported: every API operation declares one, checked
centrally before the request; the core's matrix is the built-in plugin
:mod:`crmcore.builtin.permissions`'s, docs/api.md has it.
Pagination is keyset ("cursor") based: the cursor encodes the last row's sort key, so
page 10,000 costs the same as page 1 (an OFFSET would scan every skipped row).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import json
import math
from types import SimpleNamespace
from typing import Any

import peewee
from flask import g, request
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate

from crmcore.api.schema import Schema
from crmcore.entities import context as domain_context
from crmcore.entities import visibility
from crmcore.entities.checks import check_owner, naive_utc  # noqa: F401 - moved to the domain; importable here as before
from crmcore.entities.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    StaleVersion,
)

# Re-exported: API modules and plugins import the permission names from here.
from crmcore.permissions import ROLES, has_permission, public, require  # noqa: F401

# --------------------------------------------------------------------------- ETags


def etag_for(record: Any) -> str:
    return f'"{record.id}-{record.version}"'


def if_match_version(record: Any) -> int | None:
    """The version the client's If-Match names (None: no If-Match); 412 if it is not
    this record's ETag, so a stale write never reaches the database."""
    header = request.headers.get("If-Match")
    if not header:
        return None
    if header.strip() == "*":
        return None  # any version: the last writer wins, as without If-Match
    wanted = {t.strip().removeprefix("W/") for t in header.split(",")}
    if etag_for(record) not in wanted:
        abort(412, message=f"the record changed since you read it (now {etag_for(record)}); reload and try again")
    return record.version


def with_etag(record: Any, response_headers: dict[str, str] | None = None) -> dict[str, str]:
    headers = dict(response_headers or {})
    headers["ETag"] = etag_for(record)
    return headers


# --------------------------------------------------------------------------- errors


#: entity name (crmcore.entities.service.ENTITY_NAMES) -> its collection under /api/v1
COLLECTIONS = {"lead": "leads", "contact": "contacts", "company": "companies", "deal": "deals", "activity": "activities", "note": "notes", "task": "tasks", "tag": "tags", "custom_field": "custom-fields", "pipeline": "pipelines"}


def _collection_of(record: Any) -> str | None:
    from crmcore.entities.service import ENTITY_NAMES

    return COLLECTIONS.get(ENTITY_NAMES.get(type(record), ""))


def conflict(exc: Conflict, resource: str | None = None) -> None:
    """409 for a Conflict; ``existing`` points at the record in the way, under
    /api/v1/<resource> (default: the record's own collection)."""
    existing = None
    if exc.existing is not None:
        resource = resource or _collection_of(exc.existing)
        if resource is not None:
            existing = {"id": exc.existing.id, "url": f"/api/v1/{resource}/{exc.existing.id}"}
    abort(409, message=str(exc), **({"existing": existing} if existing is not None else {}))


def stale(exc: StaleVersion) -> None:
    abort(412, message=str(exc))


def raise_http(exc: DomainError, resource: str | None = None) -> None:
    """The domain error as the API's abort(): NotFound 404, Invalid 422 with
    ``{"errors": {"json": {field: [messages]}}}``, Conflict 409 (with ``existing``),
    StaleVersion 412, Forbidden 403. The one place domain errors become HTTP."""
    if isinstance(exc, Invalid):
        abort(422, errors={"json": exc.errors})
    if isinstance(exc, Conflict):
        conflict(exc, resource)
    if isinstance(exc, StaleVersion):
        stale(exc)
    if isinstance(exc, NotFound):
        abort(404, message=str(exc))
    if isinstance(exc, Forbidden):
        abort(403, message=str(exc))
    abort(400, message=str(exc))


def http_error(exc: DomainError, resource: str | None = None) -> Exception:
    """:func:`raise_http`'s HTTPException, returned instead of raised (for the app's
    error handler, which answers every domain error nobody caught)."""
    try:
        raise_http(exc, resource)
    except Exception as http:  # flask_smorest.abort raises werkzeug's HTTPException
        return http
    raise AssertionError("unreachable")


@contextlib.contextmanager
def write_errors(resource: str) -> Any:
    """Turn the domain's refusals into HTTP answers: a duplicate into 409 (pointing
    at the existing record under /api/v1/<resource>), a stale version into 412, bad
    input into 422 (see :func:`raise_http`)."""
    try:
        yield
    except DomainError as exc:
        raise_http(exc, resource)


def get_or_404(model: type, record_id: int, what: str) -> Any:
    record = model.get_or_none(model.id == record_id)
    if record is None:
        abort(404, message=f"no {what} {record_id}")
    return record


# --------------------------------------------------------------------------- pagination


class PageArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500), metadata={"description": "Page size (1-500)."})
    cursor = fields.String(load_default=None, metadata={"description": "Opaque cursor from the previous page's `next_cursor`."})


def _encode(values: list[Any]) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, (dt.datetime, dt.date)):
            return {"$dt": v.isoformat()}
        if isinstance(v, decimal.Decimal):
            return {"$dec": str(v)}
        return v

    return base64.urlsafe_b64encode(json.dumps([plain(v) for v in values]).encode()).decode().rstrip("=")


def bad_cursor() -> None:
    """The one answer to a cursor this API did not make (or made for another sort)."""
    abort(422, errors={"query": {"cursor": ["Not a valid cursor."]}})


def _decode(cursor: str) -> list[Any]:
    """The values of a cursor made by :func:`_encode`; 422 for anything else (a damaged
    cursor is the client's mistake, never a 500)."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list):
            bad_cursor()
        out = []
        for v in raw:
            if isinstance(v, dict) and "$dt" in v:
                out.append(dt.datetime.fromisoformat(v["$dt"]))
            elif isinstance(v, dict) and "$dec" in v:
                out.append(decimal.Decimal(v["$dec"]))
            else:
                out.append(v)
        return out
    except (ValueError, TypeError, ArithmeticError, RecursionError):  # json, base64, utf-8, dates, decimal.InvalidOperation
        bad_cursor()


_INT64 = (-(2**63), 2**63 - 1)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1]


def cursor_value(field: peewee.Field, value: Any) -> Any:
    """``value`` from a cursor as a value of ``field``'s type, or a 422: a cursor of
    another sort (a name where a date belongs) would otherwise be a database error on
    PostgreSQL and a silently empty page on SQLite."""
    if isinstance(field, peewee.DateTimeField):
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                bad_cursor()
        if not isinstance(value, dt.datetime):
            bad_cursor()
        try:
            return naive_utc(value)
        except OverflowError:
            bad_cursor()
    if isinstance(field, (peewee.IntegerField, peewee.AutoField, peewee.ForeignKeyField)):
        return value if _is_int(value) else bad_cursor()
    if isinstance(field, (peewee.FloatField, peewee.DecimalField)):
        if isinstance(value, decimal.Decimal) and value.is_finite():
            return value
        if _is_int(value) or (isinstance(value, float) and math.isfinite(value)):
            return value
        bad_cursor()
    if isinstance(field, peewee.BooleanField):
        return value if isinstance(value, bool) else bad_cursor()
    if isinstance(field, (peewee.CharField, peewee.TextField)):
        return value if isinstance(value, str) and "\x00" not in value else bad_cursor()
    return value


def _plain_rows(query: peewee.ModelSelect, model: type) -> list[SimpleNamespace]:
    """The rows of ``query`` as plain records: the model's column values under their
    attribute names (a foreign key as ``<name>_id``, as on an instance), without building
    model instances, which was a quarter of a list request (bench/results/leads.md)."""
    renames = [(f.name, f.object_id_name) for f in model._meta.sorted_fields if isinstance(f, peewee.ForeignKeyField)]
    rows = []
    for row in query.dicts():
        for name, id_name in renames:
            row[id_name] = row.pop(name)
        rows.append(SimpleNamespace(**row))
    return rows


def keyset_page(query: peewee.ModelSelect, model: type, sort: str, limit: int, cursor: str | None, *, plain: bool = False) -> tuple[list[Any], str | None]:
    """One page of ``query`` ordered by ``sort`` ("field" or "-field") then id.

    Sort fields must be NOT NULL columns (each resource lists the ones it allows).
    Fetches ``limit + 1`` rows to know whether there is a next page; never counts.
    With ``plain``, the rows are plain records with the columns as attributes (what an
    API list dumps), not model instances: no related objects, no methods.
    """
    desc = sort.startswith("-")
    field = getattr(model, sort.lstrip("-"))
    order = [field.desc(), model.id.desc()] if desc else [field.asc(), model.id.asc()]
    if cursor:
        decoded = _decode(cursor)
        if len(decoded) != 2 or not _is_int(decoded[1]):
            bad_cursor()
        last_value, last_id = cursor_value(field, decoded[0]), decoded[1]
        # The first bound is implied by the second; it is there so that the database
        # seeks to the cursor in an index on the sort field (with the OR alone it reads
        # every row before the cursor: bench/results/leads.md).
        if desc:
            cond = (field <= last_value) & ((field < last_value) | ((field == last_value) & (model.id < last_id)))
        else:
            cond = (field >= last_value) & ((field > last_value) | ((field == last_value) & (model.id > last_id)))
        query = query.where(cond)
    query = query.order_by(*order).limit(limit + 1)
    rows = _plain_rows(query, model) if plain else list(query)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode([getattr(last, field.name), last.id])
    return rows, next_cursor


# --------------------------------------------------------------------------- visibility


def request_context() -> domain_context.Context:
    """The domain's Context of this request (built from ``flask.g`` once per request by
    the app; the current context outside requests)."""
    return domain_context.current()


def current_user_id() -> int | None:
    """The signed-in user, or the user a token belongs to (None for a bare token)."""
    if g.get("user") is not None:
        return g.user.id
    if g.get("token") is not None:
        return g.token.user_id
    return None


def visible(query: Any, model: type) -> Any:
    """Limit ``query`` to what the caller may see: with the tenant setting
    ``[settings.core] agents_see_own_only``, agents see records they own or nobody owns.
    The rule is :func:`crmcore.entities.visibility.visible`; this applies it to the
    request's context."""
    return visibility.visible(query, model, request_context())


def with_tags(entity: str, records: list[Any]) -> list[Any]:
    """Set ``record.tags`` (names) on each record, in one query (none for records whose
    tags are known already: one just created without tags carries ``tags = []``)."""
    from crmcore.entities.service import tag_names

    unknown = [r for r in records if getattr(r, "tags", None) is None]
    if unknown:
        tags = tag_names(entity, [r.id for r in unknown])
        for record in unknown:
            record.tags = tags.get(record.id, [])
    return records


def custom_filter(query: Any, model: type, entity: str, params: Any = None) -> Any:
    """Filter ``query`` by custom field values given as ``custom.<key>=value`` query
    parameters (equality; several combine with AND). 422 for an unknown key or a value
    that does not fit the field. Custom values are JSON text, read with json_extract on
    SQLite and ``::jsonb ->>`` on PostgreSQL."""
    from crmcore import db
    from crmcore.entities import custom

    params = request.args if params is None else params
    wanted = {k.removeprefix("custom."): v for k, v in params.items() if k.startswith("custom.")}
    if not wanted:
        return query
    defs = custom.definitions(entity)
    errors: dict[str, list[str]] = {}
    for key, raw in wanted.items():
        field = defs.get(key)
        if field is None:
            errors[f"custom.{key}"] = [f"No custom field {key!r} for {entity}s."]
            continue
        try:
            value = custom.coerce(field, raw)
        except ValidationError as exc:
            errors[f"custom.{key}"] = exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
            continue
        if db.is_postgres():
            text = peewee.Expression(peewee.Cast(model.custom, "jsonb"), "->>", key)
            if field.kind == "number":
                query = query.where(peewee.Cast(text, "numeric") == value)
            elif field.kind == "boolean":
                query = query.where(text == ("true" if value else "false"))
            else:
                query = query.where(text == value)
        else:
            extracted = peewee.fn.json_extract(model.custom, f"$.{key}")  # keys are [a-z][a-z0-9_]*
            query = query.where(extracted == (int(value) if field.kind == "boolean" else value))
    if errors:
        abort(422, errors={"query": errors})
    return query
