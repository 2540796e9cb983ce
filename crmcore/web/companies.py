"""/app/companies: the company pages, shaped like the lead pages (crmcore/web/leads.py),
with the company's contacts and deals on its page."""

from __future__ import annotations

from typing import Any

import peewee
from flask import Blueprint

from crmcore.api import common
from crmcore.api import companies as companies_api
from crmcore.api import contacts as contacts_api
from crmcore.contrib import NavItem
from crmcore.entities import checks
from crmcore.entities.models import Company, Contact, Deal
from crmcore.web.contacts import deal_links
from crmcore.web.records import RecordPages

bp = Blueprint("company_pages", __name__, url_prefix="/app/companies")
NAV = NavItem("Companies", "company_pages.index", order=30)

#: contacts listed on a company's page (the rest: the contacts list, filtered)
CONTACTS_SHOWN = 10


class CompanyPages(RecordPages):
    entity, plural, label, labels = "company", "companies", "company", "companies"
    model = Company
    schema = companies_api.CompanySchema
    query_schema = companies_api.CompanyQueryArgsSchema

    def get(self, record_id: int) -> Company:
        return companies_api.company_or_404(record_id)

    def filtered(self, args: dict[str, Any]) -> Any:
        # Industry is typed on the page: match it regardless of case (the API matches exactly).
        args = dict(args)
        industries = [i.lower() for i in args.pop("industry", None) or []]
        query = companies_api.filtered(args)
        if industries:
            query = query.where(peewee.fn.LOWER(Company.industry).in_(industries))
        return query

    def check_refs(self, data: dict[str, Any], record: Any = None) -> None:
        checks.company_input(data, record)

    def extra_context(self, view: str, record: Any = None) -> dict[str, Any]:
        context: dict[str, Any] = {"sizes": [(s, s) for s in companies_api.COMPANY_SIZES]}
        if view == "detail" and record is not None:
            args = {"company_id": record.id, "sort": "last_name", "limit": CONTACTS_SHOWN}
            rows, more = common.keyset_page(contacts_api.filtered(args), Contact, args["sort"], CONTACTS_SHOWN, None)
            context["contacts"] = rows
            context["more_contacts"] = more is not None
            context["deals"] = deal_links(Deal.company, record.id)
        return context


pages = CompanyPages()
pages.register(bp)
