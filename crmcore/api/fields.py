"""marshmallow fields shared by the entity schemas."""

from __future__ import annotations

import decimal
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from marshmallow import ValidationError, fields

#: The largest amount the API stores: 13 digits before the point. The columns
#: (``DecimalField(max_digits=16, decimal_places=2)``) hold 14 on PostgreSQL, but SQLite
#: keeps decimals as doubles, exact to the cent only below 2^53 cents.
MONEY_MAX = decimal.Decimal("9999999999999.99")
#: The longest free text (a lead's need, an activity's content) the API takes: a CRM
#: record's text, not a document store (10 MB needs made a list page 10.5 MB, issue 21).
LONG_TEXT_MAX = 10_000


def _bounded(field: fields.String, max_length: int) -> None:
    """Document and check ``max_length`` on a field that loads "" as None (a Length
    validator would then be handed None: a 500)."""
    field.metadata.setdefault("maxLength", max_length)


def _too_long(raw: str, max_length: int) -> None:
    if len(raw) > max_length:
        raise ValidationError(f"Longer than maximum length {max_length}.")


class EmailAddress(fields.String):
    """An email address checked and normalised by email-validator (no DNS lookups):
    the domain lowercased, the local part as typed. Stored lowercased whole, so that
    duplicates are found whatever the case. At most 254 characters (RFC 5321)."""

    MAX_LENGTH = 254

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        _bounded(self, self.MAX_LENGTH)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        raw = super()._deserialize(value, attr, data, **kwargs)
        if raw is None or raw == "":
            return None
        _too_long(raw.strip(), self.MAX_LENGTH)
        try:
            return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            raise ValidationError(str(exc)) from exc


class PhoneNumber(fields.String):
    """A phone number parsed by phonenumbers and stored in E.164 (+4930123456).

    Numbers without a country code are read in ``default_region`` (a tenant setting
    later; "DE" style ISO codes). At most 40 characters as typed (the column's width;
    E.164 numbers have 16 at most)."""

    MAX_LENGTH = 40

    def __init__(self, *args: Any, default_region: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.default_region = default_region
        _bounded(self, self.MAX_LENGTH)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        raw = super()._deserialize(value, attr, data, **kwargs)
        if raw is None or not raw.strip():
            return None
        _too_long(raw.strip(), self.MAX_LENGTH)
        try:
            number = phonenumbers.parse(raw, self.default_region)
        except phonenumbers.NumberParseException as exc:
            raise ValidationError(f"Not a valid phone number: {exc}") from exc
        if not phonenumbers.is_possible_number(number):
            raise ValidationError("Not a valid phone number.")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
