"""Custom fields: defined per tenant per entity, validated on every write."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from marshmallow import ValidationError

from crmcore.entities.models import CustomField

#: The largest magnitude of a custom number: whole numbers up to it are exact in a float.
NUMBER_MAX = 2**53


def definitions(entity: str) -> dict[str, CustomField]:
    return {f.key: f for f in CustomField.select().where(CustomField.entity == entity)}


def coerce(field: CustomField, value: Any) -> Any:
    """The stored form of ``value`` for ``field``; ValidationError when it does not fit."""
    if value is None:
        return None
    kind = field.kind
    if kind == "text":
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        if len(value) > 2000:
            raise ValidationError("Longer than 2000 characters.")
        return value
    if kind == "number":
        if isinstance(value, bool):
            raise ValidationError("Not a valid number.")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValidationError("Not a valid number.") from exc
        # NaN and Infinity are no JSON (the API would answer invalid JSON, PostgreSQL's
        # jsonb refuses the row in every filter), 1e400 is Infinity, and a number past
        # 2^53 loses digits as a float (and past 2^63 cannot be bound on SQLite).
        if not math.isfinite(number):
            raise ValidationError("Not a finite number (NaN and Infinity are not allowed).")
        if abs(number) > NUMBER_MAX:
            raise ValidationError(f"Out of range (at most {NUMBER_MAX:,} either way).")
        return int(number) if number.is_integer() else number
    if kind == "date":
        try:
            return dt.date.fromisoformat(str(value)).isoformat()
        except ValueError as exc:
            raise ValidationError("Not a valid date (YYYY-MM-DD).") from exc
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise ValidationError("Not a valid boolean.")
    if kind == "choice":
        if value not in (field.choices or []):
            raise ValidationError(f"Must be one of: {', '.join(map(str, field.choices or []))}.")
        return value
    raise ValidationError(f"Unknown custom field kind {kind!r}.")


def validate(entity: str, values: dict[str, Any] | None, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``values`` over ``current`` and check them against the tenant's definitions.

    Raises ValidationError({"custom": {key: [message]}}) listing every bad key.
    """
    defs = definitions(entity)
    merged = dict(current or {})
    errors: dict[str, list[str]] = {}
    for key, value in (values or {}).items():
        field = defs.get(key)
        if field is None:
            errors[key] = [f"No custom field {key!r} for {entity}s."]
            continue
        try:
            merged[key] = coerce(field, value)
        except ValidationError as exc:
            errors[key] = exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
    for key, field in defs.items():
        if field.required and merged.get(key) in (None, ""):
            errors.setdefault(key, ["Missing data for required field."])
    if errors:
        raise ValidationError({"custom": errors})
    return {k: v for k, v in merged.items() if v is not None}
