"""/app/leads: the lead pages (the reference for the other record pages).

List, bulk actions, forms, detail page and timeline come from
:class:`crmcore.web.records.RecordPages`, fed with crmcore.api.leads; this module adds
the lead's own filters and fields, and the conversion into a contact, company and deal
(crmcore.entities.convert, as ``POST /api/v1/leads/<id>/convert``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from crmcore.api import convert as convert_api
from crmcore.api import leads as leads_api
from crmcore.contrib import NavItem
from crmcore.entities import checks, convert, service
from crmcore.entities.models import LEAD_STATUSES, PRIORITIES, Company, Contact, Deal, Lead
from crmcore.web.forms import flatten, load_form
from crmcore.web.records import RecordPages, page_url, require

bp = Blueprint("lead_pages", __name__, url_prefix="/app/leads")
NAV = NavItem("Leads", "lead_pages.index", order=10)


class LeadPages(RecordPages):
    entity, plural, label, labels = "lead", "leads", "lead", "leads"
    model = Lead
    schema = leads_api.LeadSchema
    query_schema = leads_api.LeadQueryArgsSchema

    def get(self, record_id: int) -> Lead:
        return leads_api.lead_or_404(record_id)

    def filtered(self, args: dict[str, Any]) -> Any:
        return leads_api.filtered(args)

    def check_refs(self, data: dict[str, Any], record: Any = None) -> None:
        checks.lead_input(data, record)

    def extra_context(self, view: str, record: Any = None) -> dict[str, Any]:
        context: dict[str, Any] = {
            "statuses": [(s, s.capitalize()) for s in LEAD_STATUSES],
            "priorities": [(p, p.capitalize()) for p in PRIORITIES],
            # a lead keeps a source no longer offered (its plugin was turned off)
            "sources": [(s, s.capitalize()) for s in sorted({*leads_api.allowed_sources(), *([record.source] if record is not None and record.source else [])})],
        }
        if view == "detail" and record is not None:
            context["converted"] = conversion_links(record)
        return context


def conversion_links(lead: Lead) -> dict[str, Any]:
    """Links to what the lead became (contact, company, deals), if it was converted."""
    if not lead.converted_at and not lead.contact_id:
        return {}
    from crmcore.web.contacts import pages as contact_pages

    deals = list(Deal.select(Deal.id, Deal.title).where(Deal.lead == lead.id).order_by(Deal.id).limit(5))
    contact = Contact.get_or_none(Contact.id == lead.contact_id) if lead.contact_id else None
    company = Company.get_or_none(Company.id == lead.company_id) if lead.company_id else None
    return {
        "contact": {"title": contact_pages.title(contact), "url": url_for("contact_pages.detail", record_id=contact.id)} if contact else None,
        "company": {"title": company.name, "url": url_for("company_pages.detail", record_id=company.id)} if company else None,
        "deals": [{"title": d.title, "url": page_url(f"/app/deals/{d.id}")} for d in deals],
    }


pages = LeadPages()
pages.register(bp)


@bp.route("/<int:record_id>/convert", methods=["GET", "POST"])
def convert_lead(record_id: int) -> Any:
    """Convert the lead: a contact, its company and, if asked, a deal, all or nothing."""
    require("records:write")
    lead = pages.get(record_id)
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {"create_deal": "1", "deal.title": f"{lead.name} deal"[:200], "deal.value": f"{lead.estimated_value:.2f}" if lead.estimated_value is not None else ""}
    status = 200
    if request.method == "POST":
        values = request.form.to_dict()
        create_deal = request.form.get("create_deal") not in (None, "", "0")
        deal: dict[str, Any] = {}
        if create_deal:
            sub = MultiDict([(k.removeprefix("deal."), v) for k, v in request.form.items(multi=True) if k.startswith("deal.")])
            deal, deal_errors = load_form(convert_api.ConversionDealSchema(only=("title", "value")), sub, partial=True)
            errors = {f"deal.{k}": v for k, v in deal_errors.items()}
        try:
            version = int(request.form.get("version", ""))
        except ValueError:
            version = -1
        if not errors:
            try:
                result = convert.convert_lead(lead, create_deal=create_deal, deal=deal or None, if_version=version)
            except convert.AlreadyConverted:
                flash("This lead was converted already.")
                return redirect(pages.url("detail", record_id=lead.id))
            except service.StaleVersion:
                errors = {"_form": ["Someone changed this lead since you opened it. Look at it again, then convert it."]}
            except ValidationError as exc:
                errors = flatten(exc.messages)
            except service.Conflict as exc:
                errors = {"_form": [f"The contact could not be created: {exc}"]}
            else:
                made = [f"contact {'created' if result.contact_created else 'linked'}"]
                if result.company is not None:
                    made.append(f"company {'created' if result.company_created else 'linked'}")
                if result.deal is not None:
                    made.append(f"deal “{result.deal.title}” created")
                flash(f"Lead “{lead.name}” converted: {', '.join(made)}.")
                deal_page = page_url(f"/app/deals/{result.deal.id}") if result.deal is not None else None
                return redirect(deal_page or url_for("contact_pages.detail", record_id=result.contact.id))
        status = 422
        lead = pages.get(record_id)
    return pages.render("crm/leads/convert.html", status, record=lead, values=values, errors=errors, already=lead.status == "converted")
