"""/app/contacts: the contact pages, shaped like the lead pages (crmcore/web/leads.py).

The company is typed by name (with suggestions) and resolved to the visible company of
that name, so the form works with 100,000 companies where a select would not.
"""

from __future__ import annotations

from typing import Any

import peewee
from flask import Blueprint, request
from werkzeug.datastructures import MultiDict

from crmcore.api import common
from crmcore.api import contacts as contacts_api
from crmcore.contrib import NavItem
from crmcore.entities import checks
from crmcore.entities.models import LIFECYCLE_STAGES, Company, Contact, Deal
from crmcore.web.records import RecordPages, page_url

bp = Blueprint("contact_pages", __name__, url_prefix="/app/contacts")
NAV = NavItem("Contacts", "contact_pages.index", order=20)

#: company names suggested in the form and the filter
COMPANY_SUGGESTIONS = 200


def company_names(ids: list[int]) -> dict[int, str]:
    """Company names by id, in one query."""
    ids = sorted({i for i in ids if i})
    if not ids:
        return {}
    return dict(Company.select(Company.id, Company.name).where(Company.id.in_(ids)).tuples())


def company_suggestions() -> list[str]:
    query = common.visible(Company.select(Company.name), Company).order_by(Company.name).limit(COMPANY_SUGGESTIONS)
    return sorted({name for (name,) in query.tuples()})


def deal_links(field: Any, record_id: int) -> list[dict[str, Any]]:
    """A record's deals (a few, newest first), linked when the deal pages exist."""
    deals = common.visible(Deal.select(Deal.id, Deal.title, Deal.value, Deal.currency).where(field == record_id), Deal).order_by(Deal.id.desc()).limit(10)
    return [{"title": d.title, "value": d.value, "currency": d.currency, "url": page_url(f"/app/deals/{d.id}")} for d in deals]


class ContactPages(RecordPages):
    entity, plural, label, labels = "contact", "contacts", "contact", "contacts"
    model = Contact
    schema = contacts_api.ContactSchema
    query_schema = contacts_api.ContactQueryArgsSchema
    extra_filter_keys = ("company",)
    error_inputs = {"company_id": "company"}

    def get(self, record_id: int) -> Contact:
        return contacts_api.contact_or_404(record_id)

    def filtered(self, args: dict[str, Any]) -> Any:
        return contacts_api.filtered(args)

    def filter_query(self, query: Any, args: dict[str, Any]) -> Any:
        text = request.args.get("company", "").strip()
        if text:
            matching = common.visible(Company.select(Company.id), Company).where(Company.name.ilike(f"%{text}%"))
            query = query.where(Contact.company.in_(matching))
        return query

    def check_refs(self, data: dict[str, Any], record: Any = None) -> None:
        checks.contact_input(data, record)

    def title(self, record: Any) -> str:
        name = " ".join(p for p in (record.first_name, record.last_name) if p)
        return name or record.email or f"Contact {record.id}"

    def dump(self, records: list[Any]) -> list[Any]:
        super().dump(records)
        names = company_names([r.company_id for r in records])
        for record in records:
            record.company_name = names.get(record.company_id)
        return records

    def prepare_form(self, form: MultiDict, record: Any) -> tuple[MultiDict, dict[str, list[str]]]:
        """The company input holds a name: keep the current company if unchanged, else
        the visible company of that name (case-insensitive; the oldest if several)."""
        name = " ".join(form.pop("company", "").split())
        if not name:
            form["company_id"] = ""
            return form, {}
        if record is not None and record.company_id and getattr(record, "company_name", None) == name:
            form["company_id"] = str(record.company_id)
            return form, {}
        match = common.visible(Company.select(Company.id), Company).where(peewee.fn.LOWER(Company.name) == name.lower()).order_by(Company.id).first()
        if match is None:
            return form, {"company": [f"No company named “{name}”. Create the company first, or leave this empty."]}
        form["company_id"] = str(match.id)
        return form, {}

    def save(self, data: dict[str, Any], record: Any, version: int | None) -> Any:
        checks.contact_duplicate_emails(data, record)  # further emails: 409 like the API
        return super().save(data, record, version)

    def new_values(self) -> dict[str, Any]:
        values = super().new_values()
        company_id = request.args.get("company_id", "")
        if company_id.isdigit():
            values["company"] = company_names([int(company_id)]).get(int(company_id), "")
        return values

    def edit_values(self, record: Any) -> dict[str, Any]:
        values = super().edit_values(record)
        values["company"] = record.company_name or ""
        return values

    def extra_context(self, view: str, record: Any = None) -> dict[str, Any]:
        context: dict[str, Any] = {"stages": [(s, s.capitalize()) for s in LIFECYCLE_STAGES]}
        if view in ("list", "form"):
            context["company_options"] = company_suggestions()
        if view == "list" and request.args.get("company_id", "").isdigit():
            company_id = int(request.args["company_id"])
            context["company_filter"] = {"id": company_id, "name": company_names([company_id]).get(company_id, f"company {company_id}")}
        if view == "detail" and record is not None:
            context["deals"] = deal_links(Deal.contact, record.id)
        return context


pages = ContactPages()
pages.register(bp)
