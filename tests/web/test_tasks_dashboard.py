"""My tasks (/app/tasks): the signed-in user's open tasks grouped overdue / due today /
upcoming / no date, completed in place (a form, or JSON for the script), a new-task
form; and the dashboard's core summary: exact figures on a known data set, in a
constant number of queries, with empty states that say what to do."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from decimal import Decimal
from html import unescape

from crmcore import db
from crmcore.builtin.dashboard.figures import core_summary
from crmcore.db import utcnow
from crmcore.entities import deals as rules
from crmcore.entities import service
from crmcore.entities.models import Lead, Pipeline, Stage, Task
from crmcore.models import User
from crmcore.web.tasks import day_bounds


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def field_error(html: str, name: str) -> str:
    match = re.search(rf'<p class="field-error" id="{re.escape(name)}-error" role="alert">([^<]*)</p>', html)
    return match.group(1) if match else ""


def group(html: str, key: str) -> str:
    """The HTML of one group section of the tasks page ("" when not shown)."""
    match = re.search(rf'<section class="card task-group group-{key}".*?</section>', html, re.S)
    return match.group(0) if match else ""


def titles(section: str) -> list[str]:
    return re.findall(r'<div class="task-title">([^<]*)</div>', section)


@contextlib.contextmanager
def count_queries():
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


def dated_tasks(in_tenant, user_id: int | None, slug: str = "acme") -> dict[str, Task]:
    """Tasks due yesterday, today, next week and never, plus ones that must not show
    (for ``user_id``, or a new user of the tenant)."""
    start, _ = day_bounds()
    with in_tenant(slug):
        if user_id is None:
            user_id = User.create(email=f"owner-{slug}@x.test", role="agent").id
        deal = rules.create_deal({"title": "Linked deal"})
        lead = service.create(Lead, {"name": "Linked lead"})
        other = User.create(email=f"someone-{slug}@x.test", name="Someone", role="agent")
        made = {
            "yesterday": service.create(Task, {"title": "Due yesterday", "due_at": start - dt.timedelta(hours=10), "assignee": user_id, "deal": deal.id}),
            "long_ago": service.create(Task, {"title": "Due last month", "due_at": start - dt.timedelta(days=30), "assignee": user_id}),
            "today": service.create(Task, {"title": "Due today", "due_at": start + dt.timedelta(hours=12), "assignee": user_id, "lead": lead.id, "priority": "high"}),
            "next_week": service.create(Task, {"title": "Due next week", "due_at": start + dt.timedelta(days=7, hours=9), "assignee": user_id}),
            "someday": service.create(Task, {"title": "No due date", "assignee": user_id}),
            "done": service.create(Task, {"title": "Already done", "due_at": start - dt.timedelta(days=1), "assignee": user_id, "status": "done", "completed_at": utcnow() - dt.timedelta(days=1)}),
            "not_mine": service.create(Task, {"title": "Someone else's", "due_at": start, "assignee": other.id}),
        }
    made["deal"], made["lead"] = deal, lead
    return made


# --------------------------------------------------------------------------- my tasks


def test_my_tasks_are_grouped_by_due_date(signed_in, in_tenant):
    admin = signed_in("admin")
    t = dated_tasks(in_tenant, admin.user.id)
    dated_tasks(in_tenant, None, slug="other")  # another tenant's: never shown
    response = admin.get("/app/tasks/")
    assert response.status_code == 200
    html = text(response)
    assert titles(group(html, "overdue")) == ["Due last month", "Due yesterday"]
    assert titles(group(html, "today")) == ["Due today"]
    assert titles(group(html, "upcoming")) == ["Due next week"]
    assert titles(group(html, "someday")) == ["No due date"]
    assert "Someone else's" not in html and "Already done" not in html
    assert "5 open" in html
    # Each task links to its record, when the app has a page for it.
    assert f'href="/app/deals/{t["deal"].id}">Linked deal</a>' in group(html, "overdue")
    assert f'href="/app/leads/{t["lead"].id}">Linked lead</a>' in group(html, "today")
    assert '<a href="/app/tasks/" aria-current="page">Tasks</a>' in html


def test_complete_in_place_with_and_without_script(signed_in, in_tenant):
    admin = signed_in("admin")
    t = dated_tasks(in_tenant, admin.user.id)
    # Without JavaScript: a form post, back to the page with a message.
    response = admin.post(f"/app/tasks/{t['today'].id}/complete", data={"csrf_token": admin.csrf})
    assert response.status_code == 302 and response.headers["Location"].endswith("/app/tasks/")
    html = text(admin.get("/app/tasks/"))
    assert "Completed “Due today”." in html
    assert titles(group(html, "today")) == []
    assert "Due today" in group(html, "done")  # done today, with a way back
    with in_tenant():
        task = Task.get_by_id(t["today"].id)
    assert task.status == "done" and task.completed_at is not None

    # The script sends the same form asking for JSON, and removes the row itself.
    response = admin.post(f"/app/tasks/{t['yesterday'].id}/complete", data={"csrf_token": admin.csrf}, headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.json["status"] == "done"
    assert "Due yesterday" in response.json["message"]

    # Reopen; and a task on a deal's page returns there.
    assert admin.post(f"/app/tasks/{t['today'].id}/reopen", data={"csrf_token": admin.csrf}).status_code == 302
    back = admin.post(f"/app/tasks/{t['today'].id}/complete", data={"csrf_token": admin.csrf, "next": "/app/deals/"})
    assert back.headers["Location"].endswith("/app/deals/")
    evil = admin.post(f"/app/tasks/{t['next_week'].id}/complete", data={"csrf_token": admin.csrf, "next": "https://evil.test/"})
    assert evil.headers["Location"].endswith("/app/tasks/")
    assert admin.post(f"/app/tasks/{t['someday'].id}/complete").status_code == 400  # CSRF


def test_new_task_form(signed_in, in_tenant):
    admin = signed_in("admin")
    with in_tenant():
        colleague = User.create(email="colleague@acme.test", name="Colleague", role="agent")
    tomorrow = (utcnow() + dt.timedelta(days=1)).date()
    response = admin.post("/app/tasks/", data={"csrf_token": admin.csrf, "title": "Send the offer", "due_date": tomorrow.isoformat(), "due_time": "09:30", "priority": "high", "assignee_id": str(admin.user.id)})
    assert response.status_code == 302
    with in_tenant():
        task = Task.get(Task.title == "Send the offer")
    assert task.assignee_id == admin.user.id and task.due_at == dt.datetime.combine(tomorrow, dt.time(9, 30)) and task.priority == "high"
    assert "Send the offer" in group(text(admin.get("/app/tasks/")), "upcoming")

    for_colleague = admin.post("/app/tasks/", data={"csrf_token": admin.csrf, "title": "Their job", "due_date": "", "due_time": "", "priority": "medium", "assignee_id": str(colleague.id)})
    assert for_colleague.status_code == 302
    html = text(admin.get("/app/tasks/"))
    assert "Task “Their job” added for Colleague." in html and "Their job" not in titles(html)

    bad = admin.post("/app/tasks/", data={"csrf_token": admin.csrf, "title": "", "due_date": "31/12/2030", "priority": "urgent", "assignee_id": "999999"})
    assert bad.status_code == 422
    html = text(bad)
    assert field_error(html, "title") and field_error(html, "due_date") and field_error(html, "priority")
    unknown = admin.post("/app/tasks/", data={"csrf_token": admin.csrf, "title": "x", "priority": "medium", "assignee_id": "999999"})
    assert unknown.status_code == 422 and "No such user" in field_error(text(unknown), "assignee_id")


def test_tasks_empty_state_roles_and_tenants(signed_in, in_tenant):
    admin = signed_in("admin")
    html = text(admin.get("/app/tasks/"))
    assert "You have no open tasks" in html and 'action="/app/tasks/"' in html

    theirs = dated_tasks(in_tenant, None, slug="other")["today"]
    assert admin.post(f"/app/tasks/{theirs.id}/complete", data={"csrf_token": admin.csrf}).status_code == 404
    with in_tenant("other"):
        assert Task.get_by_id(theirs.id).status == "open"

    viewer = signed_in("viewer")
    mine = dated_tasks(in_tenant, viewer.user.id)["today"]
    page = text(viewer.get("/app/tasks/"))
    assert "Due today" in page and "/complete" not in page and 'id="new-task"' not in page
    assert viewer.post(f"/app/tasks/{mine.id}/complete", data={"csrf_token": viewer.csrf}).status_code == 403
    assert viewer.post("/app/tasks/", data={"csrf_token": viewer.csrf, "title": "x"}).status_code == 403


# --------------------------------------------------------------------------- dashboard


def known_data(in_tenant, me: int) -> None:
    """Leads 3 new + 1 contacted + 1 qualified (open) + 2 unqualified + 1 converted;
    open deals EUR 1000.00 @10 + 2500.50 @50 + 400.00 @75 and USD 300.00 @25, besides a
    won and a lost deal; my tasks: 2 overdue, 1 due today, 1 upcoming, plus ones that do
    not count (done, someone else's)."""
    start, _ = day_bounds()
    with in_tenant():
        pipeline = Pipeline.get(Pipeline.is_default == True)  # noqa: E712
        s = {st.name: st.id for st in Stage.select().where(Stage.pipeline == pipeline.id)}
        for i, status in enumerate(["new", "new", "new", "contacted", "qualified", "unqualified", "unqualified", "converted"]):
            service.create(Lead, {"name": f"Lead {i}", "status": status})
        rules.create_deal({"title": "A", "value": Decimal("1000.00"), "stage_id": s["Lead"]})
        rules.create_deal({"title": "B", "value": Decimal("2500.50"), "stage_id": s["Proposal"]})
        rules.create_deal({"title": "C", "value": Decimal("400"), "stage_id": s["Negotiation"]})
        rules.create_deal({"title": "D", "value": Decimal("300"), "currency": "USD", "stage_id": s["Qualified"]})
        rules.create_deal({"title": "Won", "value": Decimal("9999"), "stage_id": s["Closed Won"]})
        rules.create_deal({"title": "Lost", "value": Decimal("5000"), "stage_id": s["Closed Lost"], "lost_reason": "Price"})
        other = User.create(email="other@acme.test", role="agent")
        for due in (start - dt.timedelta(days=3), start - dt.timedelta(minutes=1)):
            service.create(Task, {"title": "Overdue", "due_at": due, "assignee": me})
        service.create(Task, {"title": "Today", "due_at": start + dt.timedelta(hours=23, minutes=59), "assignee": me})
        service.create(Task, {"title": "Later", "due_at": start + dt.timedelta(days=2), "assignee": me})
        service.create(Task, {"title": "Done", "due_at": start - dt.timedelta(days=1), "assignee": me, "status": "done"})
        service.create(Task, {"title": "Theirs", "due_at": start, "assignee": other.id})


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{re.escape(name)}"[^>]*>(?:<a [^>]*>)?([^<]*)<', html)
    return match.group(1).strip() if match else ""


def test_dashboard_summary_exact_figures(signed_in, in_tenant):
    admin = signed_in("admin")
    known_data(in_tenant, admin.user.id)
    html = text(admin.get("/app/"))
    assert figure(html, "open_leads") == "5"
    assert figure(html, "open_deals") == "4"
    assert figure(html, "pipeline_EUR") == "3,900.50 EUR"
    assert figure(html, "weighted_EUR") == "weighted 1,650.25 EUR · 3 deals"  # 100 + 1250.25 + 300
    assert figure(html, "pipeline_USD") == "300 USD"
    assert figure(html, "weighted_USD") == "weighted 75 USD · 1 deal"
    assert figure(html, "tasks_today") == "1" and figure(html, "tasks_overdue") == "2"
    assert 'href="/app/deals/?status=open"' in html and 'href="/app/tasks/"' in html
    # The plugins' widgets still come after it.
    assert html.index('class="summary"') < html.index("No widgets yet")


def test_dashboard_summary_in_a_constant_number_of_queries(signed_in, in_tenant, web_env):
    admin = signed_in("admin")
    admin.get("/app/")

    def page_queries() -> int:
        with count_queries() as statements:
            assert admin.get("/app/").status_code == 200
        return len(statements)

    def summary_queries() -> int:
        with web_env.app.test_request_context("/app/", base_url="http://acme.test"):
            web_env.app.preprocess_request()
            from flask import g

            g.user, g.role = admin.user, "admin"
            with count_queries() as statements:
                core_summary()
        return len(statements)

    known_data(in_tenant, admin.user.id)
    few_page, few_summary = page_queries(), summary_queries()
    with in_tenant():
        for i in range(30):
            service.create(Lead, {"name": f"More {i}"})
            rules.create_deal({"title": f"More {i}", "value": Decimal(i)})
            service.create(Task, {"title": f"More {i}", "due_at": utcnow() - dt.timedelta(days=i + 1), "assignee": admin.user.id})
    assert page_queries() == few_page
    assert summary_queries() == few_summary == 3


def test_dashboard_empty_states_say_what_to_do(signed_in):
    admin = signed_in("admin")
    html = text(admin.get("/app/"))
    assert figure(html, "open_leads") == "0" and "No leads to work on" in html and 'href="/app/leads/new"' in html
    assert "No deals in the pipeline" in html and 'href="/app/deals/new"' in html
    assert "Nothing pressing" in html
    viewer = signed_in("viewer")
    assert 'href="/app/deals/new"' not in text(viewer.get("/app/"))  # only for those who may create


def test_dashboard_for_a_restricted_agent_counts_their_own(web_env, signed_in, in_tenant):
    web_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"agents_see_own_only": True}})
    web_env.reload()
    agent = signed_in("agent")
    with in_tenant():
        rules.create_deal({"title": "Mine", "value": Decimal("10"), "owner_id": agent.user.id})
        rules.create_deal({"title": "Nobody's", "value": Decimal("20")})
        other = User.create(email="x@acme.test", role="agent")
        rules.create_deal({"title": "Theirs", "value": Decimal("40"), "owner_id": other.id})
    html = text(agent.get("/app/"))
    assert figure(html, "open_deals") == "2" and figure(html, "pipeline_EUR") == "30 EUR"
    admin = signed_in("admin")
    assert figure(text(admin.get("/app/")), "pipeline_EUR") == "70 EUR"


def test_tasks_page_queries_stay_constant(signed_in, in_tenant):
    admin = signed_in("admin")
    dated_tasks(in_tenant, admin.user.id)
    admin.get("/app/tasks/")

    def queries() -> int:
        with count_queries() as statements:
            assert admin.get("/app/tasks/").status_code == 200
        return len(statements)

    few = queries()
    start, _ = day_bounds()
    with in_tenant():
        for i in range(40):
            deal = rules.create_deal({"title": f"Deal {i}"})
            lead = service.create(Lead, {"name": f"Lead {i}"})
            service.create(Task, {"title": f"Deal task {i}", "due_at": start - dt.timedelta(days=i % 3), "assignee": admin.user.id, "deal": deal.id})
            service.create(Task, {"title": f"Lead task {i}", "due_at": start + dt.timedelta(days=i % 5), "assignee": admin.user.id, "lead": lead.id})
    assert queries() == few
