"""/app/deals: the deal pages.

List (search, filters by pipeline, stage, status, owner and tag, sorting, keyset pages,
bulk actions), forms, detail page, timeline with notes/tasks/calls and plugin panels come
from :class:`crmcore.web.records.RecordPages`, fed with crmcore.api.deals; this module
adds what is particular to deals: the stage chosen per pipeline, the lost reason, the
stage history and a "move to stage" form. Writes go through crmcore.entities.deals
(the API's rules and messages, stage history, ``deal_stage_changed``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, jsonify, redirect, request

from crmcore.api import common
from crmcore.api import deals as deals_api
from crmcore.api.pipelines import stages_of
from crmcore.contrib import NavItem
from crmcore.entities import checks, service
from crmcore.entities import deals as rules
from crmcore.entities.errors import Invalid
from crmcore.entities.models import PRIORITIES, Company, Contact, Deal, Lead, Pipeline, Stage
from crmcore.web.forms import domain_errors
from crmcore.web.records import RecordPages, field_errors, page_url, require

bp = Blueprint("deal_pages", __name__, url_prefix="/app/deals")
NAV = NavItem("Deals", "deal_pages.index", order=40)

#: How many companies/contacts the form's selects list; beyond, its search box finds them.
PICKER_LIMIT = 300
LOOKUP_LIMIT = 20


def contact_label(contact: Any) -> str:
    return f"{contact.first_name} {contact.last_name}".strip() or contact.email or f"Contact {contact.id}"


def names_of(model: type, ids: set[int | None]) -> dict[int, str]:
    """Display names of some companies, contacts or leads by id, in one query."""
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    if model is Contact:
        rows = Contact.select(Contact.id, Contact.first_name, Contact.last_name, Contact.email).where(Contact.id.in_(sorted(ids)))
        return {c.id: contact_label(c) for c in rows}
    return dict(model.select(model.id, model.name).where(model.id.in_(sorted(ids))).tuples())


def pipelines_with_stages() -> tuple[list[Pipeline], dict[int, Stage]]:
    """Pipelines in order, each with ``.stages``; and every stage by id (two queries, once
    per request)."""
    if "_crm_pipelines" not in g:
        pipelines = list(Pipeline.select().order_by(Pipeline.order, Pipeline.name, Pipeline.id))
        stages = stages_of([p.id for p in pipelines])
        by_id: dict[int, Stage] = {}
        for pipeline in pipelines:
            pipeline.stages = stages[pipeline.id]
            for stage in pipeline.stages:
                stage.pipeline_name = pipeline.name
                by_id[stage.id] = stage
        g._crm_pipelines = (pipelines, by_id)
    return g._crm_pipelines


def duration(seconds: int | None) -> str:
    """3725 -> "1 hour", 200000 -> "2 days": how long a deal stayed in a stage."""
    if seconds is None:
        return ""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "under a minute"


def weighted(deal: Deal) -> Any:
    return deal.value * deal.probability / 100 if deal.value is not None else None


class DealPages(RecordPages):
    entity, plural, label, labels = "deal", "deals", "deal", "deals"
    model = Deal
    schema = deals_api.DealSchema
    query_schema = deals_api.DealQueryArgsSchema

    def get(self, record_id: int) -> Deal:
        return deals_api.deal_or_404(record_id)

    def filtered(self, args: dict[str, Any]) -> Any:
        return deals_api.filtered(args)

    def check_refs(self, data: dict[str, Any], record: Any = None) -> None:
        checks.deal_visible_refs(data, record)

    def title(self, record: Any) -> str:
        return record.title

    def list_args(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The API's list arguments; newest first is by id (ids are never reused, so it is
        creation order), which the tenant index answers without sorting every deal."""
        args, problems = super().list_args()
        if not request.args.get("sort") or "sort" in problems:
            args["sort"] = "-id"
        return args, problems

    def dump(self, records: list[Any]) -> list[Any]:
        """Tags and status (the API's dump), and the names of the linked company and
        contact: four queries for a whole page."""
        deals_api.dump(records)
        companies = names_of(Company, {d.company_id for d in records})
        contacts = names_of(Contact, {d.contact_id for d in records})
        for deal in records:
            deal.company_name = companies.get(deal.company_id)
            deal.contact_name = contacts.get(deal.contact_id)
        return records

    def new_values(self) -> dict[str, Any]:
        values = super().new_values()
        pipelines, _ = pipelines_with_stages()
        default = next((p for p in pipelines if p.is_default), pipelines[0] if pipelines else None)
        values.update(priority="medium", pipeline_id=str(default.id) if default else "")
        return values

    def save(self, data: dict[str, Any], record: Any, version: int | None) -> Any:
        """The deal rules (defaults from the pipeline, the stage's probability, the lost
        reason, stage history); their Invalid is shown next to the inputs."""
        if record is None:
            return rules.create_deal(data)
        moving = data.get("stage_id") is not None and data["stage_id"] != record.stage_id
        if moving and data.get("probability") == record.probability:
            # The input showed the old stage's probability: the new stage brings its own.
            data.pop("probability")
        return rules.change_deal(record, data, if_version=version)

    def extra_context(self, view: str, record: Any = None) -> dict[str, Any]:
        pipelines, stages = pipelines_with_stages()
        context: dict[str, Any] = {
            "pipelines": pipelines,
            "stages": stages,
            "pipeline_options": [(p.id, p.name) for p in pipelines],
            "priorities": [(p, p.capitalize()) for p in PRIORITIES],
            "statuses": [("open", "Open"), ("won", "Won"), ("lost", "Lost")],
        }
        if view == "form":
            context.update(picker_context(record))
        if view == "detail" and record is not None:
            context.update(
                stage=stages.get(record.stage_id),
                pipeline=next((p for p in pipelines if p.id == record.pipeline_id), None),
                history=[{**h, "after": duration(h["seconds_in_previous"])} for h in rules.stage_history(record)],
                weighted=weighted(record),
                lead_name=names_of(Lead, {record.lead_id}).get(record.lead_id),
                links=record_links(record),
            )
        return context


def record_links(deal: Deal) -> dict[str, str | None]:
    """The pages of the deal's company, contact and lead (None where there is no page)."""
    links = {}
    for kind, plural in (("company", "companies"), ("contact", "contacts"), ("lead", "leads")):
        record_id = getattr(deal, f"{kind}_id")
        links[kind] = page_url(f"/app/{plural}/{record_id}") if record_id else None
    return links


def picker_context(record: Any) -> dict[str, Any]:
    """Options of the form's company and contact selects: the first PICKER_LIMIT by name
    (and the chosen one, wherever it sorts); deals.js adds a search box for the others."""
    values = request.form if request.method == "POST" else request.args
    chosen = {
        "company_id": values.get("company_id") or (record.company_id if record is not None else None),
        "contact_id": values.get("contact_id") or (record.contact_id if record is not None else None),
    }
    company_query = common.visible(Company.select(Company.id, Company.name), Company)
    companies = list(company_query.order_by(Company.name, Company.id).limit(PICKER_LIMIT + 1).tuples())
    contact_query = common.visible(Contact.select(Contact.id, Contact.first_name, Contact.last_name, Contact.email), Contact)
    contacts = [(c.id, contact_label(c)) for c in contact_query.order_by(Contact.last_name, Contact.first_name, Contact.id).limit(PICKER_LIMIT + 1)]
    more = {"company": len(companies) > PICKER_LIMIT, "contact": len(contacts) > PICKER_LIMIT}
    options = {"company": companies[:PICKER_LIMIT], "contact": contacts[:PICKER_LIMIT]}
    for kind, model in (("company", Company), ("contact", Contact)):
        try:
            wanted = int(chosen[f"{kind}_id"]) if chosen[f"{kind}_id"] not in (None, "") else None
        except (TypeError, ValueError):
            wanted = None
        if wanted is not None and wanted not in {i for i, _ in options[kind]}:
            name = names_of(model, {wanted}).get(wanted)
            if name is not None:
                options[kind].insert(0, (wanted, name))
    return {"company_options": options["company"], "contact_options": options["contact"], "more": more, "default_currency": rules.default_currency()}


pages = DealPages()
pages.register(bp)


@bp.route("/<int:record_id>/move", methods=["POST"])
def move(record_id: int):
    """Move the deal to another stage of its pipeline; a lost stage needs a reason."""
    require("records:write")
    deal = pages.get(record_id)
    raw_stage = request.form.get("stage_id", "").strip()
    reason = " ".join(request.form.get("lost_reason", "").split())
    errors: dict[str, list[str]] = {}
    target = Stage.get_or_none(Stage.id == int(raw_stage)) if raw_stage.isdigit() else None
    if target is None or target.pipeline_id != deal.pipeline_id:
        errors["stage_id"] = ["Choose a stage of this deal's pipeline."]
    elif target.id == deal.stage_id:
        errors["stage_id"] = [f"The deal is in {target.name} already."]
    else:
        data: dict[str, Any] = {"stage_id": target.id}
        if target.is_lost:
            data["lost_reason"] = reason or None
        try:
            version = int(request.form.get("version", ""))
        except ValueError:
            version = -1
        try:
            checks.deal_visible_refs(data, deal)
            rules.change_deal(deal, data, if_version=version)
        except Invalid as exc:
            errors = field_errors(domain_errors(exc))
        except service.StaleVersion:
            errors = {"_form": ["Someone else changed this deal meanwhile: the page now shows it as it is. Choose the stage again if you still want to move it."]}
            deal = pages.get(record_id)
    if errors:
        return pages.detail_view(deal.id, record=deal, status=409 if "_form" in errors else 422, forms={"move": {"values": request.form, "errors": errors}})
    flash(f"Moved “{deal.title}” to {target.name}.")
    return redirect(pages.url("detail", record=deal))


@bp.route("/lookup")
def lookup():
    """Companies or contacts whose name (or a contact's email) contains ``q``, as JSON:
    the deal form's search box, for tenants with more than its selects list."""
    require("records:read")
    kind, q = request.args.get("kind"), request.args.get("q", "").strip()
    like = f"%{q}%"
    if kind == "company":
        query = common.visible(Company.select(Company.id, Company.name), Company)
        if q:
            query = query.where(Company.name.ilike(like))
        items = [{"id": i, "label": n} for i, n in query.order_by(Company.name, Company.id).limit(LOOKUP_LIMIT).tuples()]
    elif kind == "contact":
        query = common.visible(Contact.select(Contact.id, Contact.first_name, Contact.last_name, Contact.email), Contact)
        if q:
            query = query.where(Contact.first_name.ilike(like) | Contact.last_name.ilike(like) | Contact.email.ilike(like))
        items = [{"id": c.id, "label": contact_label(c)} for c in query.order_by(Contact.last_name, Contact.first_name, Contact.id).limit(LOOKUP_LIMIT)]
    else:
        abort(404)
    return jsonify({"items": items})
