"""Global search, the box in every page's header: leads, contacts, companies and deals,
plus what the tenant's plugins add through the ``crm_search`` hook.

``/app/search/suggest?q=`` answers the box as one types (JSON, a few results per kind);
``/app/search/?q=`` is the results page (Enter without choosing a result). Each kind is
ONE query with a LIMIT, through the API's own list filter (``filtered({"q": ...})``), so
the search matches what the list pages' search matches and respects the same visibility
rules (``visible``: an agent restricted to their own records finds only those).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Callable

from flask import Blueprint, g, jsonify, render_template, request, url_for

from crmcore.contrib import SearchResult
from crmcore.web.records import require

log = logging.getLogger("crmcore.search")

bp = Blueprint("search", __name__, url_prefix="/app/search")

MAX_QUERY = 200
SUGGEST_LIMIT = 5
PAGE_LIMIT = 25


def _kinds() -> list[tuple[str, str, Any, Any, Callable[[Any], SearchResult]]]:
    """(kind, list endpoint, model, filtered, to_result) for the core's four kinds."""
    from crmcore.api import companies, contacts, deals, leads
    from crmcore.entities.models import Company, Contact, Deal, Lead
    from crmcore.web.contacts import pages as contact_pages

    def lead(r: Any) -> SearchResult:
        return SearchResult("Leads", r.name, url_for("lead_pages.detail", record_id=r.id), " · ".join(x for x in (r.company_name, r.email) if x), 10)

    def contact(r: Any) -> SearchResult:
        return SearchResult("Contacts", contact_pages.title(r), url_for("contact_pages.detail", record_id=r.id), " · ".join(x for x in (r.job_title, r.email) if x), 20)

    def company(r: Any) -> SearchResult:
        return SearchResult("Companies", r.name, url_for("company_pages.detail", record_id=r.id), r.domain or "", 30)

    def deal(r: Any) -> SearchResult:
        return SearchResult("Deals", r.title, url_for("deal_pages.detail", record_id=r.id), f"{r.value:,.2f} {r.currency}", 40)

    return [
        ("Leads", "lead_pages.index", Lead, leads.filtered, lead),
        ("Contacts", "contact_pages.index", Contact, contacts.filtered, contact),
        ("Companies", "company_pages.index", Company, companies.filtered, company),
        ("Deals", "deal_pages.index", Deal, deals.filtered, deal),
    ]


def search(query: str, limit: int) -> list[dict[str, Any]]:
    """Groups ``{"kind", "results", "more", "all_url"}`` in order, empty ones left out;
    ``more`` says a kind has more than ``limit`` matches (the core's kinds only)."""
    from crmcore.app import crm_state

    groups: dict[str, dict[str, Any]] = {}
    for kind, endpoint, model, filtered, to_result in _kinds():
        rows = list(filtered({"q": query}).order_by(model.updated_at.desc(), model.id.desc()).limit(limit + 1))
        if rows:
            groups[kind] = {"kind": kind, "order": to_result(rows[0]).order, "results": [to_result(r) for r in rows[:limit]],
                            "more": len(rows) > limit, "all_url": url_for(endpoint, q=query)}
    for plugin, answer in crm_state().call(g.tenant, "crm_search", tenant=g.tenant, user=g.user, query=query, limit=limit):
        for result in (answer or [])[:limit]:
            group = groups.setdefault(f"{plugin}:{result.kind}", {"kind": result.kind, "order": result.order, "results": [], "more": False, "all_url": None})
            group["results"].append(result)
    return sorted(groups.values(), key=lambda grp: (grp["order"], grp["kind"]))


def _query() -> str:
    return " ".join(request.args.get("q", "").split())[:MAX_QUERY]


@bp.route("/")
def results():
    """The results page: every kind, up to PAGE_LIMIT each, with links to the full lists."""
    require("records:read")
    query = _query()
    groups = search(query, PAGE_LIMIT) if query else []
    return render_template("crm/search.html", query=query, groups=groups)


@bp.route("/suggest")
def suggest():
    """The box's suggestions as JSON: ``{"query", "groups": [{"kind", "results": [...]}], "url"}``."""
    require("records:read")
    query = _query()
    groups = search(query, SUGGEST_LIMIT) if query else []
    response = jsonify({
        "query": query,
        "url": url_for(".results", q=query),
        "groups": [{"kind": grp["kind"], "more": grp["more"], "all_url": grp["all_url"],
                    "results": [{k: v for k, v in asdict(r).items() if k != "order"} for r in grp["results"]]} for grp in groups],
    })
    response.headers["Cache-Control"] = "no-store"
    return response
