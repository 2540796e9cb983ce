"""The deal pages (/app/deals): the list with search, filters, sorting and keyset pages
(fast with 100,000 deals); create/edit forms with the API's rules (stage per pipeline,
lost reason, stale versions); the detail page with links, stage history and timeline;
the "move to stage" form; roles and tenants."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from decimal import Decimal
from html import unescape

import pytest

from crmcore import db
from crmcore.db import utcnow
from crmcore.entities import deals as rules
from crmcore.entities.models import Company, Contact, Deal, DealStageChange, Note, Pipeline, Stage
from crmcore.models import User

# --------------------------------------------------------------------------- helpers


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def field_error(html: str, name: str) -> str:
    match = re.search(rf'<p class="field-error" id="{re.escape(name)}-error" role="alert">([^<]*)</p>', html)
    return match.group(1) if match else ""


def stages(in_tenant, slug="acme") -> dict[str, Stage]:
    with in_tenant(slug):
        pipeline = Pipeline.get(Pipeline.is_default == True)  # noqa: E712
        return {s.name: s for s in Stage.select().where(Stage.pipeline == pipeline.id)}


def make_deal(in_tenant, slug="acme", **data) -> Deal:
    with in_tenant(slug):
        return rules.create_deal({"title": "Deal", **data})


def deal_form(client, **fields) -> dict:
    """The create/edit form as the page sends it (every input, most empty)."""
    form = {
        "csrf_token": client.csrf,
        "title": "Big deal",
        "value": "",
        "currency": "",
        "expected_close_date": "",
        "stage_id": "",
        "probability": "",
        "lost_reason": "",
        "company_id": "",
        "contact_id": "",
        "owner_id": "",
        "priority": "medium",
        "source": "",
        "tags": "",
    }
    form.update(fields)
    return form


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<td class="primary-cell">\s*<a href="/app/deals/(\d+)">', html)]


def next_link(html: str) -> str | None:
    match = re.search(r'<a class="button" href="\?([^"]*)" rel="next">', html)
    return "/app/deals/?" + unescape(match.group(1)) if match else None


@contextlib.contextmanager
def count_queries():
    """The SQL statements run while the block runs."""
    database = db.database.obj
    statements: list[str] = []
    original = database.execute_sql

    def execute_sql(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return original(sql, params, *args, **kwargs)

    database.execute_sql = execute_sql
    try:
        yield statements
    finally:
        del database.execute_sql


# --------------------------------------------------------------------------- list


def test_empty_list_says_what_to_do_and_nav_item(signed_in):
    admin = signed_in("admin")
    html = text(admin.get("/app/deals/"))
    assert "No deals yet" in html and 'href="/app/deals/new"' in html
    assert '<a href="/app/deals/" aria-current="page">Deals</a>' in html


def test_list_filters_search_sort_and_pages(signed_in, in_tenant):
    admin = signed_in("admin")
    s = stages(in_tenant)
    with in_tenant():
        agent = User.create(email="agent@acme.test", name="Agnes Agent", role="agent")
    won = make_deal(in_tenant, title="Won big", value="900", stage_id=s["Closed Won"].id, tags=["vip"])
    lost = make_deal(in_tenant, title="Lost one", value="50", stage_id=s["Closed Lost"].id, lost_reason="Price")
    proposal = make_deal(in_tenant, title="Proposal for Initech", value="300", stage_id=s["Proposal"].id, owner_id=agent.id, tags=["vip", "q3"])
    fresh = make_deal(in_tenant, title="Fresh lead", value="10")

    html = text(admin.get("/app/deals/"))
    assert row_ids(html) == [fresh.id, proposal.id, lost.id, won.id]  # newest first
    assert "Proposal" in html and "Agnes Agent" in html and "300.00" in html

    assert row_ids(text(admin.get("/app/deals/?status=open"))) == [fresh.id, proposal.id]
    assert row_ids(text(admin.get("/app/deals/?status=won&status=lost"))) == [lost.id, won.id]
    assert row_ids(text(admin.get(f"/app/deals/?stage_id={s['Proposal'].id}"))) == [proposal.id]
    assert row_ids(text(admin.get(f"/app/deals/?owner_id={agent.id}"))) == [proposal.id]
    assert row_ids(text(admin.get("/app/deals/?owner_id=0"))) == [fresh.id, lost.id, won.id]
    assert row_ids(text(admin.get("/app/deals/?tag=vip"))) == [proposal.id, won.id]
    assert row_ids(text(admin.get("/app/deals/?q=initech"))) == [proposal.id]
    pipeline_id = s["Lead"].pipeline_id
    assert len(row_ids(text(admin.get(f"/app/deals/?pipeline_id={pipeline_id}")))) == 4
    assert row_ids(text(admin.get("/app/deals/?sort=-value"))) == [won.id, proposal.id, lost.id, fresh.id]
    assert row_ids(text(admin.get("/app/deals/?sort=title"))) == [fresh.id, lost.id, proposal.id, won.id]
    nothing = text(admin.get("/app/deals/?q=nothing-like-this"))
    assert "No deals match" in nothing

    # A filter that does not fit is reported and left out, never a 500.
    bad = admin.get("/app/deals/?status=pending&stage_id=x")
    assert bad.status_code == 200 and "were not understood" in text(bad)
    assert len(row_ids(text(bad))) == 4


def test_keyset_pages(signed_in, in_tenant):
    admin = signed_in("admin")
    with in_tenant():
        for i in range(55):
            rules.create_deal({"title": f"Deal {i:02d}", "value": str(i)})
    first = text(admin.get("/app/deals/?sort=-value"))
    assert len(row_ids(first)) == 50
    second = text(admin.get(next_link(first)))
    assert len(row_ids(second)) == 5 and next_link(second) is None
    assert not set(row_ids(first)) & set(row_ids(second))
    assert "Deal 00" in second


def test_list_queries_stay_constant(signed_in, in_tenant):
    admin = signed_in("admin")
    admin.get("/app/deals/")

    def queries() -> int:
        with count_queries() as statements:
            assert admin.get("/app/deals/").status_code == 200
        return len(statements)

    with in_tenant():
        company = Company.create(name="Acme Corp")
        for i in range(3):
            contact = Contact.create(first_name="F", last_name=str(i))
            rules.create_deal({"title": f"Few {i}", "tags": ["a"], "company_id": company.id, "contact_id": contact.id})
    few = queries()
    with in_tenant():
        for i in range(40):
            contact = Contact.create(first_name="C", last_name=str(i))
            rules.create_deal({"title": f"Many {i}", "tags": ["a", f"t{i}"], "contact_id": contact.id, "company_id": company.id})
    many = queries()
    assert many == few, (few, many)


def bulk_insert_deals(tenant_id: int, stage_ids: list[int], pipeline_id: int, owner_id: int, count: int) -> None:
    """``count`` deals in one INSERT ... SELECT over a generated series (seconds, not the
    minutes row-by-row inserts take): one a minute from 400 days ago, spread over the
    stages, every third owned by ``owner_id``."""
    start = (utcnow() - dt.timedelta(days=400)).replace(microsecond=0)
    mod = "%%" if db.is_postgres() else "%"  # psycopg2 reads a lone % as a placeholder
    stage = "CASE " + " ".join(f"WHEN n.i {mod} {len(stage_ids)} = {k} THEN {sid}" for k, sid in enumerate(stage_ids)) + " END"
    if db.is_postgres():
        created = "%s::timestamp + n.i * interval '1 minute'"
        series = "SELECT generate_series(0, %s - 1) AS i"
        p = "%s"
    else:
        created = "datetime(?, '+' || n.i || ' minutes')"
        series = "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?) SELECT i FROM s"
        p = "?"
    sql = (
        "INSERT INTO crm_deal (tenant_id, title, value, currency, probability, pipeline_id, stage_id, position, stage_entered_at,"
        " created_at, updated_at, owner_id, custom, version, priority)"
        f" SELECT {p}, 'Bulk deal ' || n.i, n.i {mod} 5000, 'EUR', 10, {p}, {stage}, n.i, {p}, {created}, {p},"
        f" CASE WHEN n.i {mod} 3 = 0 THEN {p} END, '{{}}', 1, 'medium' FROM ({series}) AS n"
    )
    db.database.execute_sql(sql, (tenant_id, pipeline_id, start, start, start, owner_id, count))
    assert Deal.select().count() == count


def test_list_is_fast_with_100000_deals(signed_in, in_tenant):
    """Keyset pages of the API's filtered query: the first page, a later page and a
    filtered page each answer quickly however many deals the tenant has."""
    admin = signed_in("admin")
    s = stages(in_tenant)
    with in_tenant() as tenant:
        owner = User.create(email="owner@acme.test", name="Owner", role="agent")
        bulk_insert_deals(tenant.id, [st.id for st in s.values()], s["Lead"].pipeline_id, owner.id, 100_000)
    admin.get("/app/deals/")  # warm up

    def timed(url: str) -> tuple[float, str]:
        begin = time.perf_counter()
        response = admin.get(url)
        assert response.status_code == 200
        return time.perf_counter() - begin, text(response)

    elapsed, html = timed("/app/deals/")
    assert len(row_ids(html)) == 50 and elapsed < 1.5, elapsed
    for _ in range(3):  # deeper pages cost the same
        elapsed, html = timed(next_link(html))
        assert len(row_ids(html)) == 50 and elapsed < 1.5, elapsed
    elapsed, html = timed(f"/app/deals/?status=open&owner_id={owner.id}")
    assert len(row_ids(html)) == 50 and elapsed < 1.5, elapsed
    elapsed, html = timed("/app/deals/?q=deal%2099999")
    assert row_ids(html) and elapsed < 1.5, elapsed
    elapsed, html = timed("/app/deals/?sort=-value")  # no index on value: a sort, still well under a second
    assert len(row_ids(html)) == 50 and elapsed < 1.5, elapsed


# --------------------------------------------------------------------------- create


def test_create_form_and_defaults(signed_in, in_tenant):
    admin = signed_in("admin")
    s = stages(in_tenant)
    page = text(admin.get("/app/deals/new"))
    assert 'name="title"' in page and "Closed Lost (lost)" in page and 'name="lost_reason"' in page
    with in_tenant():
        company = Company.create(name="Initech")
        contact = Contact.create(first_name="Peter", last_name="Gibbons", company=company)
    response = admin.post("/app/deals/new", data=deal_form(admin, title="Initech rollout", value="12000.5", company_id=str(company.id), contact_id=str(contact.id), tags="big, q3", owner_id=str(admin.user.id)))
    assert response.status_code == 302, text(response)
    with in_tenant():
        deal = Deal.get(Deal.title == "Initech rollout")
    assert response.headers["Location"].endswith(f"/app/deals/{deal.id}")
    assert deal.value == Decimal("12000.50") and deal.currency == "EUR" and deal.stage_id == s["Lead"].id and deal.probability == 10
    assert deal.company_id == company.id and deal.contact_id == contact.id and deal.owner_id == admin.user.id
    detail = text(admin.get(f"/app/deals/{deal.id}"))
    assert "Initech rollout" in detail and "big" in detail and "12,000.50" in detail


def test_create_validation_errors_are_inline_and_nothing_is_stored(signed_in, in_tenant):
    admin = signed_in("admin")
    s = stages(in_tenant)
    response = admin.post("/app/deals/new", data=deal_form(admin, title="", value="-5", probability="101", currency="EURO", expected_close_date="soon"))
    assert response.status_code == 422
    html = text(response)
    for name in ("title", "value", "probability", "currency", "expected_close_date"):
        assert field_error(html, name), name
    assert "Please correct the highlighted fields" in html

    lost = admin.post("/app/deals/new", data=deal_form(admin, stage_id=str(s["Closed Lost"].id)))
    assert lost.status_code == 422
    assert "Required: the deal is lost" in field_error(text(lost), "lost_reason")

    with in_tenant():
        other = Pipeline.create(name="Partners", order=1)
        other_stage = Stage.create(pipeline=other, name="Talking", order=0)
    wrong = admin.post("/app/deals/new", data=deal_form(admin, pipeline_id=str(s["Lead"].pipeline_id), stage_id=str(other_stage.id)))
    assert wrong.status_code == 422 and "another pipeline" in field_error(text(wrong), "stage_id")
    unknown = admin.post("/app/deals/new", data=deal_form(admin, company_id="999999"))
    assert unknown.status_code == 422 and "No such company" in field_error(text(unknown), "company_id")
    with in_tenant():
        assert Deal.select().count() == 0

    # With a second pipeline, its stages are offered (deals.js shows the chosen pipeline's).
    page = text(admin.get("/app/deals/new"))
    assert 'name="pipeline_id"' in page and f'data-pipeline="{other.id}"' in page
    ok = admin.post("/app/deals/new", data=deal_form(admin, pipeline_id=str(other.id), stage_id=str(other_stage.id), title="Partner deal"))
    assert ok.status_code == 302
    with in_tenant():
        assert Deal.get(Deal.title == "Partner deal").pipeline_id == other.id


def test_new_deal_lost_with_reason(signed_in, in_tenant):
    admin = signed_in("admin")
    s = stages(in_tenant)
    response = admin.post("/app/deals/new", data=deal_form(admin, title="Gone", stage_id=str(s["Closed Lost"].id), lost_reason="Chose a competitor"))
    assert response.status_code == 302
    with in_tenant():
        deal = Deal.get(Deal.title == "Gone")
    assert deal.lost_reason == "Chose a competitor" and deal.closed_at is not None
    html = text(admin.get(f"/app/deals/{deal.id}"))
    assert "Lost reason" in html and "Chose a competitor" in html and 'class="badge deal-lost"' in html


# --------------------------------------------------------------------------- edit


def test_edit_form_moves_stage_and_refuses_stale_versions(signed_in, in_tenant):
    admin = signed_in("admin")
    s = stages(in_tenant)
    deal = make_deal(in_tenant, title="Edit me", value="100", tags=["x"])
    page = text(admin.get(f"/app/deals/{deal.id}/edit"))
    assert 'value="Edit me"' in page and f'name="version" value="{deal.version}"' in page and 'value="x"' in page

    form = deal_form(admin, title="Edited", value="250", stage_id=str(s["Proposal"].id), probability="10", tags="x, y", version=str(deal.version))
    response = admin.post(f"/app/deals/{deal.id}/edit", data=form)
    assert response.status_code == 302, text(response)
    with in_tenant():
        stored = Deal.get_by_id(deal.id)
        history = list(DealStageChange.select().where(DealStageChange.deal == deal.id))
    assert stored.title == "Edited" and stored.value == Decimal("250") and stored.stage_id == s["Proposal"].id
    assert stored.probability == 50  # the shown probability was the old stage's: the new stage's applies
    assert [(h.from_stage_id, h.to_stage_id, h.changed_by_id) for h in history] == [(s["Lead"].id, s["Proposal"].id, admin.user.id)]

    # The same (now stale) form again: refused, nothing overwritten, a clear message.
    stale = admin.post(f"/app/deals/{deal.id}/edit", data={**form, "title": "Overwrite"})
    assert stale.status_code == 409
    assert "someone else changed this deal" in text(stale)
    with in_tenant():
        assert Deal.get_by_id(deal.id).title == "Edited"

    # Emptying the title is an error, not "unchanged"; a lost stage needs its reason.
    with in_tenant():
        version = Deal.get_by_id(deal.id).version
    empty = admin.post(f"/app/deals/{deal.id}/edit", data=deal_form(admin, title="", version=str(version)))
    assert empty.status_code == 422 and field_error(text(empty), "title")
    lost = admin.post(f"/app/deals/{deal.id}/edit", data=deal_form(admin, title="Edited", stage_id=str(s["Closed Lost"].id), version=str(version)))
    assert lost.status_code == 422 and "Required" in field_error(text(lost), "lost_reason")


# --------------------------------------------------------------------------- detail and move


def test_detail_shows_fields_links_history_and_timeline(signed_in, in_tenant):
    admin = signed_in("admin")
    s = stages(in_tenant)
    with in_tenant():
        company = Company.create(name="Globex")
        contact = Contact.create(first_name="Hank", last_name="Scorpio", company=company)
    deal = make_deal(in_tenant, title="Globex domination", value="5000", company_id=company.id, contact_id=contact.id, expected_close_date=dt.date(2031, 1, 31))
    with in_tenant():
        Note.create(body="Wants a volcano lair", deal=deal.id, author=admin.user.id)
    html = text(admin.get(f"/app/deals/{deal.id}"))
    assert "Globex domination" in html and "5,000.00" in html and "2031-01-31" in html and "weighted 500.00" in html
    assert f'href="/app/companies/{company.id}"' in html and "Globex" in html
    assert f'href="/app/contacts/{contact.id}"' in html and "Hank Scorpio" in html
    assert "Wants a volcano lair" in html  # the timeline
    assert "Still in its first stage" in html
    assert f'action="/app/deals/{deal.id}/move"' in html and f'action="/app/deals/{deal.id}/notes"' in html

    # Adding a note in place (the record pages' shared form) lands on the timeline.
    response = admin.post(f"/app/deals/{deal.id}/notes", data={"csrf_token": admin.csrf, "body": "Call after the board meeting"})
    assert response.status_code == 302
    assert "Call after the board meeting" in text(admin.get(f"/app/deals/{deal.id}"))
    assert s  # stages exist


def test_move_to_stage_from_the_page(signed_in, in_tenant):
    admin = signed_in("admin")
    s = stages(in_tenant)
    deal = make_deal(in_tenant, title="Mover", value="1000")
    response = admin.post(f"/app/deals/{deal.id}/move", data={"csrf_token": admin.csrf, "stage_id": str(s["Negotiation"].id), "version": str(deal.version), "lost_reason": ""})
    assert response.status_code == 302
    html = text(admin.get(response.headers["Location"]))
    assert "Moved “Mover” to Negotiation." in html
    history = html.split('id="h-history"', 1)[1]
    assert "Lead → <strong>Negotiation</strong>" in history
    assert "Moved from Lead to Negotiation" in html  # the timeline's stage change
    with in_tenant():
        moved = Deal.get_by_id(deal.id)
    assert moved.stage_id == s["Negotiation"].id and moved.probability == 75

    # A lost stage needs a reason: shown inline, nothing moves.
    refused = admin.post(f"/app/deals/{deal.id}/move", data={"csrf_token": admin.csrf, "stage_id": str(s["Closed Lost"].id), "version": str(moved.version), "lost_reason": " "})
    assert refused.status_code == 422
    assert "Required: the deal is lost" in field_error(text(refused), "lost_reason")
    with in_tenant():
        assert Deal.get_by_id(deal.id).stage_id == s["Negotiation"].id

    lost = admin.post(f"/app/deals/{deal.id}/move", data={"csrf_token": admin.csrf, "stage_id": str(s["Closed Lost"].id), "version": str(moved.version), "lost_reason": "Budget cut"})
    assert lost.status_code == 302
    with in_tenant():
        gone = Deal.get_by_id(deal.id)
    assert gone.lost_reason == "Budget cut" and gone.closed_at is not None
    html = text(admin.get(f"/app/deals/{deal.id}"))
    assert "Negotiation → <strong>Closed Lost</strong>" in html and "Budget cut" in html

    # A stale page, or a stage of the same place, are refused with a message.
    stale = admin.post(f"/app/deals/{deal.id}/move", data={"csrf_token": admin.csrf, "stage_id": str(s["Proposal"].id), "version": str(moved.version)})
    assert stale.status_code == 409 and "Someone else changed this deal" in text(stale)
    same = admin.post(f"/app/deals/{deal.id}/move", data={"csrf_token": admin.csrf, "stage_id": str(s["Closed Lost"].id), "version": str(gone.version), "lost_reason": "x"})
    assert same.status_code == 422 and "already" in field_error(text(same), "stage_id")
    with in_tenant():
        other = Pipeline.create(name="Other", order=1)
        foreign = Stage.create(pipeline=other, name="Elsewhere", order=0)
    wrong = admin.post(f"/app/deals/{deal.id}/move", data={"csrf_token": admin.csrf, "stage_id": str(foreign.id), "version": str(gone.version)})
    assert wrong.status_code == 422 and "this deal's pipeline" in field_error(text(wrong), "stage_id")


def test_company_and_contact_lookup(signed_in, in_tenant):
    admin = signed_in("admin")
    with in_tenant():
        Company.create(name="Northwind Traders")
        Company.create(name="Southwind")
        Contact.create(first_name="Nancy", last_name="Davolio", email="nancy@northwind.test")
    assert [i["label"] for i in admin.get("/app/deals/lookup?kind=company&q=north").json["items"]] == ["Northwind Traders"]
    assert [i["label"] for i in admin.get("/app/deals/lookup?kind=contact&q=davo").json["items"]] == ["Nancy Davolio"]
    assert admin.get("/app/deals/lookup?kind=other").status_code == 404


# --------------------------------------------------------------------------- roles, tenants, CSRF


def test_permissions_per_role(signed_in, in_tenant):
    s = stages(in_tenant)
    deal = make_deal(in_tenant, title="Guarded")
    viewer = signed_in("viewer")
    html = text(viewer.get("/app/deals/"))
    assert "Guarded" in html and 'href="/app/deals/new"' not in html
    detail = text(viewer.get(f"/app/deals/{deal.id}"))
    assert "/move" not in detail and f"/app/deals/{deal.id}/edit" not in detail
    assert viewer.get("/app/deals/new").status_code == 403
    assert viewer.post("/app/deals/new", data=deal_form(viewer)).status_code == 403
    assert viewer.get(f"/app/deals/{deal.id}/edit").status_code == 403
    assert viewer.post(f"/app/deals/{deal.id}/move", data={"csrf_token": viewer.csrf, "stage_id": str(s["Proposal"].id), "version": "1"}).status_code == 403
    assert viewer.post(f"/app/deals/{deal.id}/notes", data={"csrf_token": viewer.csrf, "body": "hi"}).status_code == 403

    agent = signed_in("agent")
    assert agent.get("/app/deals/new").status_code == 200
    assert f"/app/deals/{deal.id}/delete" not in text(agent.get(f"/app/deals/{deal.id}"))
    assert agent.get(f"/app/deals/{deal.id}/delete").status_code == 403
    assert agent.post(f"/app/deals/{deal.id}/delete", data={"csrf_token": agent.csrf, "version": "1"}).status_code == 403
    moved = agent.post(f"/app/deals/{deal.id}/move", data={"csrf_token": agent.csrf, "stage_id": str(s["Proposal"].id), "version": "1"})
    assert moved.status_code == 302

    manager = signed_in("manager")
    with in_tenant():
        version = Deal.get_by_id(deal.id).version
    assert manager.get(f"/app/deals/{deal.id}/delete").status_code == 200
    assert manager.post(f"/app/deals/{deal.id}/delete", data={"csrf_token": manager.csrf, "version": str(version)}).status_code == 302
    with in_tenant():
        assert not Deal.select().where(Deal.id == deal.id).exists()


def test_other_tenants_deals_are_404(signed_in, in_tenant):
    theirs = make_deal(in_tenant, "other", title="Their secret deal")
    admin = signed_in("admin")
    for url in (f"/app/deals/{theirs.id}", f"/app/deals/{theirs.id}/edit", f"/app/deals/{theirs.id}/delete"):
        assert admin.get(url).status_code == 404, url
    s = stages(in_tenant, "other")
    for url, data in ((f"/app/deals/{theirs.id}/move", {"stage_id": str(s["Proposal"].id), "version": "1"}), (f"/app/deals/{theirs.id}/edit", deal_form(admin, version="1")), (f"/app/deals/{theirs.id}/notes", {"body": "x"})):
        assert admin.post(url, data={"csrf_token": admin.csrf, **data}).status_code == 404, url
    assert "Their secret deal" not in text(admin.get("/app/deals/?q=secret"))
    with in_tenant("other"):
        assert Deal.get_by_id(theirs.id).stage_id == s["Lead"].id


def test_forms_need_the_csrf_token(signed_in, in_tenant):
    admin = signed_in("admin")
    deal = make_deal(in_tenant, title="Protected")
    assert admin.post("/app/deals/new", data={"title": "No token"}).status_code == 400
    assert admin.post(f"/app/deals/{deal.id}/move", data={"stage_id": "1"}).status_code == 400


def test_signed_out_people_are_sent_to_sign_in(web_env):
    client = web_env.client("acme")
    response = client.get("/app/deals/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("sort", ["-created_at", "title", "-value", "probability", "-updated_at"])
def test_every_offered_sort_works(signed_in, in_tenant, sort):
    admin = signed_in("admin")
    make_deal(in_tenant, title="A", value="1")
    make_deal(in_tenant, title="B", value="2")
    assert len(row_ids(text(admin.get(f"/app/deals/?sort={sort}")))) == 2


def test_form_pickers_with_many_companies(signed_in, in_tenant):
    """Beyond PICKER_LIMIT companies the select lists the first ones by name and gets a
    search box (deals.js, /lookup); the deal's own company is always an option."""
    from crmcore.web.deals import PICKER_LIMIT

    admin = signed_in("admin")
    with in_tenant() as tenant:
        rows = [{"tenant": tenant.id, "name": f"Company {i:04d}", "custom": {}} for i in range(PICKER_LIMIT + 5)]
        with db.atomic():
            Company.insert_many(rows).execute()
        last = Company.get(Company.name == f"Company {PICKER_LIMIT + 4:04d}")
    deal = make_deal(in_tenant, title="Far down the list", company_id=last.id)
    page = text(admin.get(f"/app/deals/{deal.id}/edit"))
    assert 'data-lookup="company"' in page and 'data-lookup="contact"' not in page
    assert f'<option value="{last.id}" selected>Company {PICKER_LIMIT + 4:04d}</option>' in page
    assert page.count("<option value=") < PICKER_LIMIT + 30
