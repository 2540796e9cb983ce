"""Lead conversion: a qualified lead becomes a contact, a company and (optionally) a deal.

All of it happens in one transaction: if any part fails (a bad deal stage, a duplicate,
a concurrent change of the lead) nothing is written and no signal is sent. Existing
records are reused rather than duplicated: the contact with the lead's email, the
company with the lead's company name (case-insensitively), or the ones the caller names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import peewee
from marshmallow import ValidationError

from crmcore import db
from crmcore.db import utcnow
from crmcore.entities import deals, service
from crmcore.entities.models import Activity, Company, Contact, Deal, Lead, Note, Task


class AlreadyConverted(service.Conflict):
    """The lead was converted before (409)."""


@dataclass
class Conversion:
    """What a conversion produced; ``*_created`` tell new records from linked ones."""

    lead: Lead
    contact: Contact
    company: Company | None
    deal: Deal | None
    contact_created: bool
    company_created: bool


def split_name(name: str) -> tuple[str, str]:
    """"Ada King Lovelace" -> ("Ada King", "Lovelace"); one word is a first name."""
    first, _, last = name.strip().rpartition(" ")
    if not first:
        first, last = last, ""
    return first.strip()[:100], last.strip()[:100]


def _company(lead: Lead, company_id: int | None) -> tuple[Company | None, bool]:
    if company_id is not None:
        company = Company.get_or_none(Company.id == company_id)
        if company is None:
            raise ValidationError({"company_id": ["No such company in this tenant."]})
        return company, False
    name = (lead.company_name or "").strip()
    if not name:
        return None, False
    existing = Company.select().where(peewee.fn.LOWER(Company.name) == name.lower()).order_by(Company.id).first()
    if existing is not None:
        return existing, False
    return service.create(Company, {"name": name, "owner": lead.owner_id}), True


def _contact(lead: Lead, contact_id: int | None, company: Company | None, has_deal: bool) -> tuple[Contact, bool]:
    if contact_id is not None:
        contact = Contact.get_or_none(Contact.id == contact_id)
        if contact is None:
            raise ValidationError({"contact_id": ["No such contact in this tenant."]})
    elif lead.email:
        contact = Contact.get_or_none(peewee.fn.LOWER(Contact.email) == lead.email.lower())
    else:
        contact = None
    if contact is not None:
        if company is not None and contact.company_id is None:
            service.update(contact, {"company": company.id})
        return contact, False
    first, last = split_name(lead.name)
    data = {
        "first_name": first,
        "last_name": last,
        "email": lead.email,
        "phone": lead.phone,
        "company": company.id if company is not None else None,
        "owner": lead.owner_id,
        "lifecycle_stage": "opportunity" if has_deal else "lead",
    }
    return service.create(Contact, data), True


def _relink(lead: Lead, contact: Contact, company: Company | None) -> None:
    """The lead's activities, notes and tasks also point at the contact (and company)
    where they point at none yet; bumping their versions keeps ETags honest."""
    now = utcnow()
    for model in (Activity, Note, Task):
        model.update(contact=contact.id, version=model.version + 1, updated_at=now).where((model.lead == lead.id) & model.contact.is_null()).execute()
        if company is not None:
            model.update(company=company.id, version=model.version + 1, updated_at=now).where((model.lead == lead.id) & model.company.is_null()).execute()


def convert_lead(lead: Lead, *, create_deal: bool = False, deal: dict[str, Any] | None = None, contact_id: int | None = None, company_id: int | None = None, if_version: int | None = None) -> Conversion:
    """Convert ``lead``; raises AlreadyConverted (409), ValidationError (422, deal errors
    under ``deal``) or service.StaleVersion when the lead changed meanwhile."""
    if lead.status == "converted" or lead.converted_at is not None:
        raise AlreadyConverted(f"lead {lead.id} was converted already", existing=lead.contact if lead.contact_id else None)
    version = if_version if if_version is not None else lead.version
    with db.atomic():
        company, company_created = _company(lead, company_id)
        contact, contact_created = _contact(lead, contact_id, company, create_deal)
        new_deal = None
        if create_deal:
            data = {"value": lead.estimated_value or 0, "owner_id": lead.owner_id, "source": lead.source, **(deal or {})}
            data.setdefault("title", f"{lead.name} deal"[:200])
            data.update(contact_id=contact.id, company_id=company.id if company is not None else None, lead_id=lead.id)
            try:
                new_deal = deals.create_deal(data)
            except ValidationError as exc:
                raise ValidationError({"deal": exc.messages}) from exc
        _relink(lead, contact, company)
        now = utcnow()
        # The version check makes a concurrent second conversion fail (and roll back).
        service.update(lead, {"status": "converted", "converted_at": now, "contact": contact.id, "company": company.id if company is not None else None}, if_version=version)
        service.audit("lead", lead.id, "convert", {"contact": [None, contact.id], "company": [None, company.id if company else None], "deal": [None, new_deal.id if new_deal else None]})
        service._send(db.current_tenant(), "lead_converted", lead=lead, contact=contact, company=company, deal=new_deal)
    return Conversion(lead, contact, company, new_deal, contact_created, company_created)
