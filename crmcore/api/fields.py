"""marshmallow fields shared by the entity schemas."""

from __future__ import annotations

from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from marshmallow import ValidationError, fields


class EmailAddress(fields.String):
    """An email address checked and normalised by email-validator (no DNS lookups):
    the domain lowercased, the local part as typed. Stored lowercased whole, so that
    duplicates are found whatever the case."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        raw = super()._deserialize(value, attr, data, **kwargs)
        if raw is None or raw == "":
            return None
        try:
            return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            raise ValidationError(str(exc)) from exc


class PhoneNumber(fields.String):
    """A phone number parsed by phonenumbers and stored in E.164 (+4930123456).

    Numbers without a country code are read in ``default_region`` (a tenant setting
    later; "DE" style ISO codes)."""

    def __init__(self, *args: Any, default_region: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.default_region = default_region

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        raw = super()._deserialize(value, attr, data, **kwargs)
        if raw is None or not raw.strip():
            return None
        try:
            number = phonenumbers.parse(raw, self.default_region)
        except phonenumbers.NumberParseException as exc:
            raise ValidationError(f"Not a valid phone number: {exc}") from exc
        if not phonenumbers.is_possible_number(number):
            raise ValidationError("Not a valid phone number.")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
