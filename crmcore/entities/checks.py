"""The input rules of leads, contacts, companies and deals that need the database or
the caller: references in this tenant (and, for agents with ``agents_see_own_only``,
visible to them), allowed lead sources, custom fields, a contact's name or email,
duplicate contact emails.

Each ``<entity>_input(data, record=None, ctx=None)`` checks ``data`` (already loaded by
the entity's schema, with the API's field names) for a new record or for changes to
``record``, raises :class:`~crmcore.entities.errors.Invalid` listing every wrong field,
and otherwise completes ``data`` in place with the model's field names (``owner_id`` ->
``owner``), ready for :mod:`crmcore.entities.service`. The API, the web pages and the CSV
import all call these, so an input is accepted or refused the same way everywhere.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from marshmallow import ValidationError

from crmcore.entities import custom, deals, visibility, vocabulary
from crmcore.entities.context import Context, resolve
from crmcore.entities.errors import Conflict, Invalid
from crmcore.entities.models import Company, Contact, Deal, Lead
from crmcore.models import User


def naive_utc(value: Any) -> Any:
    """Datetimes are stored naive UTC; convert an aware one from a client."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def check_user(data: dict[str, Any], key: str, errors: dict[str, Any]) -> None:
    """``data[key]`` (a user id) must name a user of this tenant."""
    if data.get(key) is not None and not User.select().where(User.id == data[key]).exists():
        errors[key] = ["No such user in this tenant."]


def check_owner(data: dict[str, Any], errors: dict[str, Any]) -> None:
    """owner_id must name a user of this tenant."""
    check_user(data, "owner_id", errors)


def _custom(entity: str, data: dict[str, Any], record: Any, errors: dict[str, Any]) -> None:
    if "custom" in data or record is None:
        try:
            data["custom"] = custom.validate(entity, data.get("custom"), record.custom if record is not None else None)
        except ValidationError as exc:
            errors.update(exc.messages)


def _rename(data: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key in data:
            data[key.removesuffix("_id")] = data.pop(key)


# --------------------------------------------------------------------------- leads


def lead_sources(ctx: Context | None = None) -> tuple[str, ...]:
    """The lead sources of the context's tenant: the core's, its ``extra_lead_sources``
    and its plugins' (``crm_lead_sources``)."""
    ctx = resolve(ctx)
    return vocabulary.lead_sources(ctx.current_tenant, ctx)


def lead_input(data: dict[str, Any], record: Lead | None = None, ctx: Context | None = None) -> None:
    """Owner in this tenant, source allowed, custom fields."""
    errors: dict[str, Any] = {}
    check_owner(data, errors)
    if "source" in data and (problem := vocabulary.check(data["source"], lead_sources(ctx), record.source if record is not None else None)):
        errors["source"] = problem
    _custom("lead", data, record, errors)
    if errors:
        raise Invalid(errors)
    _rename(data, "owner_id")
    if "last_contact_at" in data:
        data["last_contact_at"] = naive_utc(data["last_contact_at"])


# --------------------------------------------------------------------------- companies


def company_input(data: dict[str, Any], record: Company | None = None, ctx: Context | None = None) -> None:
    """Owner in this tenant, custom fields."""
    errors: dict[str, Any] = {}
    check_owner(data, errors)
    _custom("company", data, record, errors)
    if errors:
        raise Invalid(errors)
    _rename(data, "owner_id")


# --------------------------------------------------------------------------- contacts


def contact_input(data: dict[str, Any], record: Contact | None = None, ctx: Context | None = None) -> None:
    """Owner and company in this tenant (the company visible to the caller), custom
    fields, and that a contact keeps a name or an email; further addresses normalised."""
    errors: dict[str, Any] = {}
    check_owner(data, errors)
    if data.get("company_id") is not None and not visibility.can_see(Company, data["company_id"], ctx):
        errors["company_id"] = ["No such company."]
    _custom("contact", data, record, errors)

    def final(key: str) -> Any:
        return data[key] if key in data else (getattr(record, key) if record is not None else None)

    if not ((final("first_name") or "").strip() or (final("last_name") or "").strip() or final("email")):
        errors.setdefault("last_name", ["A contact needs a first name, a last name or an email."])
    if errors:
        raise Invalid(errors)
    # Further addresses: normalised, without repeats and without the primary one.
    for many, one in (("emails", "email"), ("phones", "phone")):
        if many in data or (one in data and record is not None):
            items = data.get(many, getattr(record, many, None) or [])
            data[many] = [x for i, x in enumerate(items) if x and x != final(one) and x not in items[:i]]
    _rename(data, "owner_id", "company_id")


def contact_duplicate_emails(data: dict[str, Any], record: Contact | None = None, ctx: Context | None = None) -> None:
    """Conflict when an address is another contact's primary or further email. The
    primary email is also unique in the database; further ones are checked here."""
    addresses = [a for a in [data.get("email"), *data.get("emails", [])] if a]
    if not addresses:
        return
    cond = Contact.email.in_(addresses)
    for address in addresses:
        cond |= Contact.emails.coerce(False).contains(json.dumps(address))
    query = Contact.select().where(cond)
    if record is not None:
        query = query.where(Contact.id != record.id)
    for other in query.limit(20):
        taken = {other.email, *(other.emails or [])} & set(addresses)
        if taken:
            raise Conflict(f"a contact with email {min(taken)} already exists", other, "email")


# --------------------------------------------------------------------------- deals


def deal_visible_refs(data: dict[str, Any], record: Deal | None = None, ctx: Context | None = None) -> None:
    """With ``agents_see_own_only``, an agent may link only records they can see (the
    deal rules check the tenant, this the caller): Invalid with every other error too."""
    hidden = {}
    for key, model in (("contact_id", Contact), ("company_id", Company), ("lead_id", Lead)):
        if data.get(key) is not None and not visibility.can_see(model, data[key], ctx):
            hidden[key] = [f"No such {key.removesuffix('_id')} in this tenant."]
    if not hidden:
        return
    try:
        deals.prepare(dict(data), record, ctx)
        errors = {}
    except ValidationError as exc:
        errors = exc.messages
    raise Invalid({**errors, **hidden})


def deal_input(data: dict[str, Any], record: Deal | None = None, ctx: Context | None = None) -> None:
    """The deal rules' checks and defaults (:func:`crmcore.entities.deals.prepare`),
    applied to ``data`` in place (model field names), for callers that then write with
    service.create/update themselves, such as the CSV import."""
    values, _stage = deals.prepare(data, record, ctx)
    data.clear()
    data.update(values)
