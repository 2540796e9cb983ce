"""Global search (/app/search/suggest as one types, /app/search/ for Enter): leads,
contacts, companies and deals with one query each, the visibility rules, the header box
on every page, and the crm_search hook. Real app and database."""

from __future__ import annotations

import logging

from crmcore import SearchResult, db, hookimpl
from crmcore.entities import deals as deal_rules
from crmcore.entities import service
from crmcore.entities.models import Company, Contact, Lead
from crmcore.models import User
from tests.web.test_leads_pages import count_queries


def seed(in_tenant, slug="acme", owner=None):
    with in_tenant(slug):
        company = service.create(Company, {"name": "Globex Corporation", "domain": "globex.test", "owner": owner})
        contact = service.create(Contact, {"first_name": "Hank", "last_name": "Globex-Scorpio", "email": "hank@globex.test", "company": company.id})
        lead = service.create(Lead, {"name": "Globex expansion", "email": "buyer@globex.test", "owner": owner})
        deal = deal_rules.create_deal({"title": "Globex renewal", "value": "1200"})
        service.create(Lead, {"name": "Initech", "email": "bill@initech.test"})
    return {"company": company.id, "contact": contact.id, "lead": lead.id, "deal": deal.id}


def test_suggest_finds_every_kind_with_one_query_each(signed_in, in_tenant):
    viewer = signed_in("viewer")
    ids = seed(in_tenant)
    viewer.get("/app/search/suggest?q=warm")  # warm up (tenant row, config)
    with count_queries(db.database.obj) as statements:
        data = viewer.get("/app/search/suggest?q=globex").json
    kinds = {g["kind"]: g for g in data["groups"]}
    assert list(kinds) == ["Leads", "Contacts", "Companies", "Deals"]
    assert kinds["Leads"]["results"] == [{"kind": "Leads", "label": "Globex expansion", "url": f"/app/leads/{ids['lead']}", "detail": "buyer@globex.test"}]
    assert kinds["Contacts"]["results"][0]["url"] == f"/app/contacts/{ids['contact']}"
    assert kinds["Companies"]["results"][0]["detail"] == "globex.test"
    assert kinds["Deals"]["results"][0]["label"] == "Globex renewal"
    assert "Initech" not in str(data) and data["url"] == "/app/search/?q=globex"
    selects = [s for s in statements if "LIKE" in s.upper() and "LIMIT" in s.upper()]
    assert len(selects) == 4, statements  # one per kind, each with a LIMIT
    assert len(statements) <= 12, statements

    # More than the box shows: a "more" flag and a link to the filtered list.
    with in_tenant():
        for i in range(7):
            service.create(Lead, {"name": f"Globex office {i}"})
    leads = viewer.get("/app/search/suggest?q=GLOBEX").json["groups"][0]
    assert len(leads["results"]) == 5 and leads["more"] and leads["all_url"] == "/app/leads/?q=GLOBEX"
    assert viewer.get("/app/search/suggest?q=").json["groups"] == []
    assert viewer.get("/app/search/suggest?q=" + "x" * 500).status_code == 200  # long input is cut, not a 500


def test_results_page_and_the_header_box(web_env, signed_in, in_tenant):
    agent = signed_in("agent")
    seed(in_tenant)
    page = agent.get("/app/search/?q=globex").get_data(as_text=True)
    assert "Results for “globex”" in page and "Globex expansion" in page and "Globex renewal" in page and "Initech" not in page
    assert 'id="global-search"' in page and 'value="globex"' in page and "search.js" in page
    assert "Nothing matches" in agent.get("/app/search/?q=zzzz-nothing").get_data(as_text=True)
    assert 'role="search"' in agent.get("/app/leads/").get_data(as_text=True)  # the box is on every page
    assert web_env.client("acme").get("/app/search/suggest?q=globex").status_code in (302, 401)  # signed in only
    assert 'role="search"' not in web_env.client("acme").get("/login").get_data(as_text=True)


def test_search_respects_visibility_and_tenants(web_env, signed_in, in_tenant):
    web_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"agents_see_own_only": True}})
    web_env.reload()
    agent = signed_in("agent")
    with in_tenant():
        someone = User.create(email="x@acme.test", role="agent")
    seed(in_tenant, owner=someone.id)
    with in_tenant():
        service.create(Lead, {"name": "Globex mine", "owner": agent.user.id})
    data = agent.get("/app/search/suggest?q=globex").json
    labels = [r["label"] for g in data["groups"] for r in g["results"]]
    assert "Globex mine" in labels and "Globex expansion" not in labels and "Globex Corporation" not in labels
    seed(in_tenant, slug="other")
    other = signed_in("admin", slug="other")
    assert "Globex mine" not in str(other.get("/app/search/suggest?q=globex").json)
    assert signed_in("admin").get("/app/search/suggest?q=globex").status_code == 200


def test_hook_crm_search(web_env, signed_in, in_tenant, register_plugin, caplog):
    seen = []

    class Tickets:
        @hookimpl
        def crm_search(self, tenant, user, query, limit):
            seen.append((tenant.slug, user.role, query, limit))
            return [SearchResult("Tickets", f"Ticket {i} about {query}", f"/app/tickets/{i}", "open", order=5) for i in range(limit + 3)]

    class Raising:
        @hookimpl
        def crm_search(self, tenant, user, query, limit):
            raise RuntimeError("search bug")

    class Disabled:
        @hookimpl
        def crm_search(self, tenant, user, query, limit):
            return [SearchResult("Secret", "not for this tenant", "/x")]

    register_plugin(Tickets(), name="tickets")
    register_plugin(Raising(), name="raising")
    register_plugin(Disabled(), name="disabled", always_on=False)
    seed(in_tenant)
    manager = signed_in("manager")
    caplog.set_level(logging.ERROR)
    data = manager.get("/app/search/suggest?q=globex").json
    assert [g["kind"] for g in data["groups"]] == ["Tickets", "Leads", "Contacts", "Companies", "Deals"]
    assert len(data["groups"][0]["results"]) == 5 and data["groups"][0]["results"][0]["label"] == "Ticket 0 about globex"
    assert ("acme", "manager", "globex", 5) in seen
    assert "search bug" in caplog.text and "not for this tenant" not in str(data)
    page = manager.get("/app/search/?q=globex").get_data(as_text=True)
    assert "Ticket 24 about globex" in page and ("acme", "manager", "globex", 25) in seen
