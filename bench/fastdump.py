"""Experiment (not used by the app): a precompiled marshmallow dump for output schemas.

marshmallow walks every field of every object through several generic calls
(``Field.serialize`` -> ``get_value`` -> ``_serialize``); for a page of 50 leads with 23
fields that is the largest single cost of the list endpoint. ``compile_dump`` reads a
schema's dump fields once and builds one plain function per schema that produces the
same dict for the field types the entity schemas use, falling back to the field's own
``serialize`` for anything else. bench_api.py ``--fast-dump`` patches it into
LeadSchema/LeadPageSchema in the benchmark process only, and its byte-for-byte JSON
check against the floor proves the output unchanged.
"""

from __future__ import annotations

from typing import Any, Callable

from marshmallow import Schema, fields
from marshmallow.utils import missing

_MISSING = object()


def _plain(field: fields.Field) -> Callable[[Any], Any] | None:
    """A converter for value -> output when the field's _serialize is a known plain one."""
    t = type(field)
    if isinstance(field, fields.String) and t._serialize is fields.String._serialize:
        return lambda v: None if v is None else str(v)
    if t is fields.Integer and not field.as_string:
        return lambda v: None if v is None else int(v)
    if t is fields.DateTime and field.format in (None, "iso"):
        return lambda v: None if v is None else v.isoformat()
    return None


def compile_dump(schema: Schema) -> Callable[[Any], dict[str, Any]]:
    if schema.only or schema.exclude or type(schema)._hooks.get("pre_dump") or type(schema)._hooks.get("post_dump"):
        raise ValueError("only plain schemas are compiled")
    plan: list[tuple[str, str, Callable[[Any], Any] | None, fields.Field]] = []
    for name, field in schema.dump_fields.items():
        key = field.data_key or name
        attr = field.attribute or name
        conv = _plain(field)
        if conv is None and isinstance(field, fields.List) and _plain(field.inner) is not None:
            inner = _plain(field.inner)
            conv = (lambda inner: lambda v: None if v is None else [inner(x) for x in v])(inner)
        if conv is None and isinstance(field, fields.Nested) and not field.many:
            nested = compile_dump(field.schema)
            conv = (lambda nested: lambda v: None if v is None else nested(v))(nested)
        if conv is None and isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
            nested = compile_dump(field.inner.schema)
            conv = (lambda nested: lambda v: None if v is None else [nested(x) for x in v])(nested)
        plan.append((key, attr, conv, field))

    def dump(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        is_dict = isinstance(obj, dict)
        for key, attr, conv, field in plan:
            value = obj.get(attr, _MISSING) if is_dict else getattr(obj, attr, _MISSING)
            if value is _MISSING:
                continue
            if conv is not None:
                out[key] = conv(value)
            else:
                result = field.serialize(attr, obj, accessor=schema.get_attribute)
                if result is not missing:
                    out[key] = result
        return out

    return dump


def patch(*schema_classes: type[Schema]) -> None:
    """Make ``Schema.dump`` of these classes use a compiled dump (for plain instances)."""
    for cls in schema_classes:
        original = cls.dump
        compiled = compile_dump(cls())

        def dump(self: Schema, obj: Any, *, many: bool | None = None, _original: Any = original, _compiled: Any = compiled) -> Any:
            if self.only or self.exclude:
                return _original(self, obj, many=many)
            if self.many if many is None else many:
                return [_compiled(o) for o in obj]
            return _compiled(obj)

        cls.dump = dump
