"""The base ``Schema`` of the API's resources: marshmallow's, with a compiled dump.

marshmallow serialises every field of every object through several generic calls
(``Field.serialize`` -> ``get_value`` -> accessor -> ``_serialize``). For a list page of 50
leads with 23 fields that was a third of the request (bench/results/leads.md). Each schema
instance here compiles, on its first dump, a plan from its own ``dump_fields``: for field
types whose ``_serialize`` is known to be plain (String, Integer, DateTime with a named
format, Dict with plain keys, List and Nested of those) it converts the value directly; every other field keeps
marshmallow's own ``serialize``. The output is identical to marshmallow's (the test
tests/api/test_schema_dump.py compares both on real records for every API schema), so
only the time changes.

It also bounds what every API schema loads, so that a value the database cannot hold is a
422 naming its field rather than a 500 (issue 21): an Integer without an upper bound gets
the range of a PostgreSQL ``integer`` (ids and peewee's IntegerField are int32 there), a
number that is not whole (``1.5``) is refused instead of truncated, and a date-time whose
offset would carry it past year 1 or 9999 in UTC is refused.

A schema with its own ``get_attribute`` is dumped by marshmallow as it is, and so is a
field that reads a dotted attribute or has a ``dump_default`` (dump hooks still run, as
``dump()`` calls them around ``_serialize()``); flask-smorest keeps one schema instance per response decorator, so compiling once
per instance is compiling once.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from typing import Any

import flask_smorest
import marshmallow
from marshmallow import fields, validate
from marshmallow.utils import ensure_text_type, missing

_ABSENT = object()
#: A PostgreSQL ``integer``: peewee's IntegerField, AutoField and ForeignKeyField columns.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
Converter = Callable[[Any], Any]


def _same_serialize(field: fields.Field, base: type[fields.Field]) -> bool:
    """``field`` serialises exactly as ``base`` does (no subclass override of _serialize)."""
    return isinstance(field, base) and type(field)._serialize is base._serialize


def _converter(field: fields.Field) -> Converter | None:
    """A direct value -> output function for ``field``, or None to use ``field.serialize``."""
    if field.dump_default is not missing or "." in (field.attribute or ""):
        return None
    if _same_serialize(field, fields.String):
        return lambda v: None if v is None else ensure_text_type(v)
    if type(field) is fields.Integer and not field.as_string:
        return lambda v: None if v is None else int(v)
    if _same_serialize(field, fields.DateTime):
        func = field.SERIALIZATION_FUNCS.get(field.format or field.DEFAULT_FORMAT)
        if func is not None:
            return lambda v: None if v is None else func(v)
        return None
    if _same_serialize(field, fields.Mapping) and field.value_field is None:
        mapping = field.mapping_type
        if field.key_field is None:
            return lambda v: None if v is None else mapping(v)
        if _same_serialize(field.key_field, fields.String):
            return lambda v: None if v is None else mapping((ensure_text_type(k), x) for k, x in v.items())
        return None
    if _same_serialize(field, fields.List):
        inner = _converter(field.inner)
        if inner is not None:
            return lambda v: None if v is None else [inner(x) for x in v]
        return None
    if _same_serialize(field, fields.Nested) and isinstance(field.schema, Schema):
        schema = field.schema
        # Calling the nested plan directly skips the nested schema's dump(): only without hooks.
        nested = None if schema._hooks["pre_dump"] or schema._hooks["post_dump"] else schema._compiled()
        if nested is None:
            return None
        if schema.many or field.many:
            return lambda v: None if v is None else [nested(x) for x in v]
        return lambda v: None if v is None else nested(v)
    return None


def _utc_isoformat(value: dt.datetime) -> str:
    """ISO 8601 with its offset: times are stored as naive UTC, and a date-time without an
    offset is not an RFC 3339 date-time (what the OpenAPI document promises)."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)).isoformat()


def _has_upper_bound(field: fields.Field) -> bool:
    return any(isinstance(v, validate.Range) and v.max is not None for v in field.validators)


def _whole_numbers_only(field: fields.Integer) -> None:
    """Make ``field`` refuse 1.5 (marshmallow's Integer truncates it to 1) while it still
    takes "15" from a query string (which ``strict=True`` would refuse)."""
    loose = field._validated

    def validated(value: Any) -> int:
        if isinstance(value, (float, decimal.Decimal)) and not (value.is_integer() if isinstance(value, float) else value == value.to_integral_value()):
            raise field.make_error("invalid", input=value)
        if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
            raise field.make_error("invalid", input=value)
        return loose(value)

    field._validated = validated  # type: ignore[method-assign]


def _utc_representable(value: dt.datetime) -> None:
    """A date-time with an offset must still be a date-time once converted to UTC (how
    it is stored): ``0001-01-01T00:00:00+05:00`` is not."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        try:
            value.astimezone(dt.UTC)
        except (OverflowError, ValueError) as exc:
            raise marshmallow.ValidationError("Out of range once converted to UTC (years 1 to 9999).") from exc


def bound_input(field_obj: fields.Field) -> None:
    """Bound what ``field_obj`` loads to what the database stores (see the module doc)."""
    if field_obj.dump_only:
        return
    if isinstance(field_obj, fields.Integer):
        _whole_numbers_only(field_obj)
        if not _has_upper_bound(field_obj):
            field_obj.validators.append(validate.Range(min=INT32_MIN, max=INT32_MAX))
    elif isinstance(field_obj, fields.DateTime):
        field_obj.validators.append(_utc_representable)
    elif isinstance(field_obj, fields.List) and field_obj.inner is not None:
        bound_input(field_obj.inner)


class Schema(marshmallow.Schema):
    """marshmallow's Schema with a compiled dump (same output, a fraction of the calls)
    and loads bounded to what the database can store (:func:`bound_input`)."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        bound_input(field_obj)
        # Date-times are dumped with their offset (UTC). Per field instance, so both
        # marshmallow's own dump and the compiled one read the same function.
        if type(field_obj) is fields.DateTime and (field_obj.format or "iso") in ("iso", "iso8601"):
            field_obj.SERIALIZATION_FUNCS = {**field_obj.SERIALIZATION_FUNCS, "iso": _utc_isoformat, "iso8601": _utc_isoformat}

    _compiled_plan: Callable[[Any], dict[str, Any]] | None | bool = False  # False: not built yet

    def _compiled(self) -> Callable[[Any], dict[str, Any]] | None:
        if self._compiled_plan is False:
            self._compiled_plan = self._compile()
        return self._compiled_plan  # type: ignore[return-value]

    def _compile(self) -> Callable[[Any], dict[str, Any]] | None:
        # pre_dump/post_dump hooks still run: dump() calls them around _serialize().
        if type(self).get_attribute is not marshmallow.Schema.get_attribute:
            return None
        plan: list[tuple[str, str, Converter | None, fields.Field]] = []
        for name, field in self.dump_fields.items():
            key = field.data_key if field.data_key is not None else name
            plan.append((key, field.attribute or name, _converter(field), field))
        accessor = self.get_attribute

        def dump_one(obj: Any) -> dict[str, Any]:
            # marshmallow reads dicts by key and objects by attribute; anything else that
            # has __getitem__ (a sequence, a row proxy) goes the slow, general way.
            if isinstance(obj, dict):
                get = obj.get
            elif hasattr(obj, "__getitem__"):
                return marshmallow.Schema._serialize(self, obj, many=False)
            else:
                def get(attr: str, default: Any) -> Any:
                    return getattr(obj, attr, default)
            out: dict[str, Any] = {}
            for key, attr, conv, field in plan:
                if conv is None:
                    value = field.serialize(attr, obj, accessor=accessor)
                    if value is not missing:
                        out[key] = value
                    continue
                value = get(attr, _ABSENT)
                if value is not _ABSENT:
                    out[key] = conv(value)
            return out

        return dump_one

    def _serialize(self, obj: Any, *, many: bool = False) -> Any:
        compiled = self._compiled()
        if compiled is None or obj is None:
            return super()._serialize(obj, many=many)
        if many:
            return [compiled(item) for item in obj]
        return compiled(obj)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, with each ``arguments`` schema made once.

    Given a Schema class, webargs builds a new instance for every request (for a lead,
    23 fields set up again each time); an instance is reused. Schemas keep no state
    between loads (marshmallow 4 has no ``context``), so one instance per route is safe.
    """

    def arguments(self, schema: Any, **kwargs: Any) -> Any:
        return super().arguments(schema() if isinstance(schema, type) else schema, **kwargs)
