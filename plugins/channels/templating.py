"""Templates shared by every channel: Jinja2's SandboxedEnvironment over plain values of
the record, its contact, company and deal, and the sending user.

A variable with no value (``{{ contact.first_name }}`` for a lead without a contact)
renders as the tenant's ``template_default`` instead of failing; a syntax error is a
:class:`TemplateProblem` naming the field and the line (the API answers 422).
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from crmcore.sdk import Company, Contact, Deal, Lead, User

#: columns never offered to a template (internal or secret)
HIDDEN = {"tenant", "password_hash", "version", "custom", "deleted_at"}


class TemplateProblem(ValueError):
    """A template that cannot be rendered: ``field`` and ``line`` say where."""

    def __init__(self, field: str, line: int | None, message: str):
        self.field, self.line = field, line
        where = f"line {line}: " if line else ""
        super().__init__(f"{where}{message}")


def _environment(default: str) -> SandboxedEnvironment:
    class Fallback(ChainableUndefined):
        """Any missing value (at any depth) renders as the default."""

        def __str__(self) -> str:
            return default

    env = SandboxedEnvironment(undefined=Fallback, autoescape=False, keep_trailing_newline=True)
    return env


def check_syntax(field: str, source: str) -> None:
    """Raise :class:`TemplateProblem` when ``source`` does not parse."""
    try:
        _environment("").parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(field, exc.lineno, exc.message or "syntax error") from None


def render(sources: dict[str, str], context: dict[str, Any], default: str = "") -> dict[str, str]:
    """Render each named source (``{"subject": ..., "body": ...}``) with ``context``."""
    env = _environment(default)
    out = {}
    for field, source in sources.items():
        try:
            out[field] = env.from_string(source or "").render(context)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(field, exc.lineno, exc.message or "syntax error") from None
        except SecurityError as exc:
            raise TemplateProblem(field, None, f"not allowed in a template: {exc}") from None
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            raise TemplateProblem(field, None, str(exc)) from None
    return out


def plain(row: Any) -> dict[str, Any]:
    """A row's columns as plain values (no model, no methods: the sandbox sees data only)."""
    if row is None:
        return {}
    values = {}
    for name, value in row.__data__.items():
        if name in HIDDEN:
            continue
        if isinstance(value, (dt.date, dt.datetime)):
            value = value.isoformat()
        elif isinstance(value, decimal.Decimal):
            value = str(value)
        values[name] = value
    if isinstance(row, (Lead, Contact)) and "first_name" not in values:
        name = (values.get("name") or "").split()
        values["first_name"] = name[0] if name else None
    return values


def context_for(entity: str | None, record: Any, user: User | None = None) -> dict[str, Any]:
    """Variables of a record: ``record``, ``lead``, ``contact``, ``company``, ``deal``, ``user``."""
    lead = contact = company = deal = None
    if entity == "lead":
        lead = record
        contact = Contact.get_or_none(Contact.id == record.contact_id) if getattr(record, "contact_id", None) else None
        company = Company.get_or_none(Company.id == record.company_id) if getattr(record, "company_id", None) else None
    elif entity == "contact":
        contact = record
        company = Company.get_or_none(Company.id == record.company_id) if record.company_id else None
    elif entity == "deal":
        deal = record
        contact = Contact.get_or_none(Contact.id == record.contact_id) if getattr(record, "contact_id", None) else None
        company = Company.get_or_none(Company.id == record.company_id) if getattr(record, "company_id", None) else None
    elif entity == "company":
        company = record
    if contact is None and lead is not None:
        contact = lead  # a lead is the person until it is converted
    return {
        "record": plain(record), "lead": plain(lead), "contact": plain(contact),
        "company": plain(company), "deal": plain(deal),
        "user": {k: v for k, v in plain(user).items() if k in ("id", "name", "email")},
    }


ENTITIES = {"lead": Lead, "contact": Contact, "deal": Deal, "company": Company}
