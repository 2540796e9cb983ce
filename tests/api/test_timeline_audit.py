"""Timelines (/api/v1/<records>/<id>/timeline) and audit trails (/api/v1/<records>/<id>/audit,
/api/v1/audit): order, content, pagination, constant queries, actors, tenant isolation."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from tests.api.test_activities import in_tenant, lead, user_api


def at(day: int, hour: int = 12) -> str:
    return f"2024-02-{day:02d}T{hour:02d}:00:00Z"


def backdate(env, model, record_id, when):
    """Move created_at of a note or task (the API stamps it now) to ``when``."""
    with in_tenant(env):
        model.update(created_at=dt.datetime.fromisoformat(when.rstrip("Z"))).where(model.id == record_id).execute()


@pytest.fixture
def deal_setup(api_env):
    """A deal in the default pipeline and that pipeline's stages."""
    from crmcore import db
    from crmcore.entities import service
    from crmcore.entities.models import Deal, Stage

    with in_tenant(api_env):
        pipeline = service.ensure_default_pipeline(db.current_tenant())
        stages = list(Stage.select().where(Stage.pipeline == pipeline).order_by(Stage.order))
        deal = service.create(Deal, {"title": "Big one", "pipeline": pipeline.id, "stage": stages[0].id})
    return deal, stages


def test_lead_timeline_order_content_and_filters(api, api_env):
    from crmcore.entities.models import Note, Task

    ld = lead(api)
    other = lead(api, name="Other", email="other@example.com")
    call = api.post("/api/v1/activities", json={"kind": "call", "direction": "out", "subject": "Intro call", "lead_id": ld["id"], "occurred_at": at(3)}).json
    email = api.post("/api/v1/activities", json={"kind": "email", "content": "Long   text\n" * 30, "lead_id": ld["id"], "occurred_at": at(1)}).json
    note = api.post("/api/v1/notes", json={"body": "Wants a demo", "lead_id": ld["id"], "pinned": True}).json
    backdate(api_env, Note, note["id"], at(2))
    todo = api.post("/api/v1/tasks", json={"title": "Send offer", "lead_id": ld["id"], "due_at": at(9)}).json
    backdate(api_env, Task, todo["id"], at(4))
    api.post("/api/v1/notes", json={"body": "Not this lead", "lead_id": other["id"]})

    response = api.get(f"/api/v1/leads/{ld['id']}/timeline")
    assert response.status_code == 200, response.json
    items = response.json["items"]
    assert [(i["type"], i["id"]) for i in items] == [("task", todo["id"]), ("activity", call["id"]), ("note", note["id"]), ("activity", email["id"])]
    assert response.json["next_cursor"] is None
    assert items[0]["summary"] == "Send offer" and items[0]["status"] == "open" and items[0]["due_at"].startswith("2024-02-09")
    assert items[1]["summary"] == "Intro call" and items[1]["kind"] == "call" and items[1]["direction"] == "out"
    assert items[1]["at"].startswith("2024-02-03T12:00:00") and items[1]["url"] == f"/api/v1/activities/{call['id']}"
    assert items[2]["summary"] == "Wants a demo" and items[2]["pinned"] is True
    assert items[3]["summary"].startswith("Long text Long text") and len(items[3]["summary"]) == 140

    only = api.get(f"/api/v1/leads/{ld['id']}/timeline?type=note&type=task").json["items"]
    assert [i["type"] for i in only] == ["task", "note"]
    older = api.get(f"/api/v1/leads/{ld['id']}/timeline?before=2024-02-03T12:00:00%2B00:00").json["items"]
    assert [i["id"] for i in older] == [note["id"], email["id"]]
    assert api.get(f"/api/v1/leads/{ld['id']}/timeline?type=meeting").status_code == 422
    assert api.get(f"/api/v1/leads/{ld['id']}/timeline?cursor=zzz").status_code == 422


def test_timeline_pages_through_ties_in_constant_queries(api, api_env, caplog):
    from crmcore.entities.models import Note, Task

    ld = lead(api)

    def add(n):
        for _ in range(n):
            api.post("/api/v1/activities", json={"kind": "call", "lead_id": ld["id"], "occurred_at": at(5)})
            backdate(api_env, Note, api.post("/api/v1/notes", json={"body": "n", "lead_id": ld["id"]}).json["id"], at(5))
            backdate(api_env, Task, api.post("/api/v1/tasks", json={"title": "t", "lead_id": ld["id"]}).json["id"], at(5))

    def queries(url):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            response = api.get(url)
        assert response.status_code == 200
        return response.json, sum(1 for r in caplog.records if r.name == "peewee")

    add(2)
    _, few = queries(f"/api/v1/leads/{ld['id']}/timeline")
    add(8)
    _, many = queries(f"/api/v1/leads/{ld['id']}/timeline")
    assert 0 < many == few <= 8  # auth + record + one per item type

    # Every item has the same time: the (at, type, id) cursor still gives each once, in order.
    seen, cursor = [], None
    while True:
        page = api.get(f"/api/v1/leads/{ld['id']}/timeline?limit=7" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [(i["type"], i["id"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 30 and len(set(seen)) == 30
    assert seen == sorted(seen, reverse=True)


def test_deal_contact_company_timelines(api, api_env, deal_setup):
    from crmcore.entities import service
    from crmcore.entities.models import Company, Contact

    deal, stages = deal_setup
    with in_tenant(api_env):
        company = service.create(Company, {"name": "Acme Corp"})
        contact = service.create(Contact, {"first_name": "Ann", "last_name": "Lee"})
        service.move_deal(deal, stages[1])
        service.move_deal(deal, stages[2])
    meeting = api.post("/api/v1/activities", json={"kind": "meeting", "deal_id": deal.id, "contact_id": contact.id, "subject": "Kick-off"}).json
    items = api.get(f"/api/v1/deals/{deal.id}/timeline").json["items"]
    assert [i["type"] for i in items] == ["activity", "stage_change", "stage_change"]
    assert items[1]["summary"] == "Moved from Qualified to Proposal"
    assert (items[1]["from_stage_id"], items[1]["to_stage_id"]) == (stages[1].id, stages[2].id)
    assert [i["id"] for i in api.get(f"/api/v1/contacts/{contact.id}/timeline").json["items"]] == [meeting["id"]]
    assert api.get(f"/api/v1/companies/{company.id}/timeline").json["items"] == []
    assert api.get(f"/api/v1/deals/{deal.id}/timeline?type=stage_change&limit=1").json["next_cursor"]


def test_timeline_404s(api, as_role, deal_setup):
    ld = lead(api)
    other = as_role("admin", "other")
    deal, _ = deal_setup
    assert other.get(f"/api/v1/leads/{ld['id']}/timeline").status_code == 404
    assert other.get(f"/api/v1/deals/{deal.id}/timeline").status_code == 404
    for collection in ("leads", "contacts", "companies", "deals"):
        assert api.get(f"/api/v1/{collection}/987654/timeline").status_code == 404
    assert api.get(f"/api/v1/planets/{ld['id']}/timeline").status_code == 404
    assert as_role("viewer").get(f"/api/v1/leads/{ld['id']}/timeline").status_code == 200
    assert api.get(f"/api/v1/leads/{ld['id']}/timeline", headers={"Authorization": "Bearer nope"}).status_code == 401


# --------------------------------------------------------------------------- audit


def test_lead_audit_create_update_delete_with_actor(api_env, as_role):
    admin, admin_id = user_api(api_env, "admin")
    token_api = as_role("manager")
    ld = lead(admin, email="audit@example.com", priority="low")
    admin.patch(f"/api/v1/leads/{ld['id']}", json={"priority": "high", "name": "Grace B. Hopper"})
    assert token_api.delete(f"/api/v1/leads/{ld['id']}").status_code == 204

    response = token_api.get(f"/api/v1/leads/{ld['id']}/audit")  # still there after the delete
    assert response.status_code == 200, response.json
    entries = response.json["items"]
    assert [e["action"] for e in entries] == ["delete", "update", "create"]
    deleted, updated, created = entries
    assert updated["changes"] == {"priority": ["low", "high"], "name": ["Grace Hopper", "Grace B. Hopper"]}
    assert created["changes"]["email"] == [None, "audit@example.com"] and created["changes"]["priority"] == [None, "low"]
    assert created["entity"] == "lead" and created["entity_id"] == ld["id"]
    assert created["actor"]["type"] == "token" and created["actor"]["user_id"] == admin_id and created["actor"]["name"] == "user token"
    assert deleted["actor"]["type"] == "token" and deleted["actor"]["user_id"] is None and deleted["actor"]["id"] != created["actor"]["id"]
    assert deleted["at"] >= updated["at"] >= created["at"]

    # Other tenants: 404, for the deleted record and for live ones.
    other = as_role("admin", "other")
    assert other.get(f"/api/v1/leads/{ld['id']}/audit").status_code == 404
    live = lead(token_api, name="Live")
    assert other.get(f"/api/v1/leads/{live['id']}/audit").status_code == 404
    assert token_api.get("/api/v1/leads/987654/audit").status_code == 404


def test_audit_of_signed_in_user(api_env, api):
    client = api_env.client("acme")
    user = api_env.login(client, role="manager", email="maria@acme.test")
    csrf = api_env.csrf(client)
    response = client.post("/api/v1/leads", json={"name": "From the web"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201, response.json
    entry = api.get(f"/api/v1/leads/{response.json['id']}/audit").json["items"][0]
    assert entry["actor"] == {"type": "user", "id": user.id, "email": "maria@acme.test"}


def test_audit_of_activities_notes_tasks_and_system(api, api_env):
    ld = lead(api)
    act = api.post("/api/v1/activities", json={"kind": "call", "lead_id": ld["id"]}).json
    api.patch(f"/api/v1/activities/{act['id']}", json={"outcome": "voicemail"})
    note = api.post("/api/v1/notes", json={"body": "x", "lead_id": ld["id"]}).json
    api.delete(f"/api/v1/notes/{note['id']}")
    todo = api.post("/api/v1/tasks", json={"title": "t"}).json
    api.patch(f"/api/v1/tasks/{todo['id']}", json={"status": "done"})
    assert [e["action"] for e in api.get(f"/api/v1/activities/{act['id']}/audit").json["items"]] == ["update", "create"]
    assert api.get(f"/api/v1/activities/{act['id']}/audit").json["items"][0]["changes"] == {"outcome": [None, "voicemail"]}
    assert [e["action"] for e in api.get(f"/api/v1/notes/{note['id']}/audit").json["items"]] == ["delete", "create"]
    task_update = api.get(f"/api/v1/tasks/{todo['id']}/audit").json["items"][0]
    assert task_update["changes"]["status"] == ["open", "done"] and task_update["changes"]["completed_at"][0] is None

    # Written by a job or command: no actor.
    from crmcore.entities import service
    from crmcore.entities.models import Lead

    with in_tenant(api_env):
        service.update(Lead.get_by_id(ld["id"]), {"need": "CRM"})
    assert api.get(f"/api/v1/leads/{ld['id']}/audit").json["items"][0]["actor"] == {"type": "system", "id": None}
    # A record that exists but was never audited has an empty trail, not a 404.
    with in_tenant(api_env):
        silent = Lead.create(name="Imported raw")
    assert api.get(f"/api/v1/leads/{silent.id}/audit").json == {"items": [], "next_cursor": None}


def test_audit_permissions_pages_and_tenant_log(api, as_role):
    ld = lead(api)
    for i in range(6):
        api.patch(f"/api/v1/leads/{ld['id']}", json={"need": f"need {i}"})
    assert as_role("agent").get(f"/api/v1/leads/{ld['id']}/audit").status_code == 403
    assert as_role("viewer").get("/api/v1/audit").status_code == 403
    assert as_role("manager").get(f"/api/v1/leads/{ld['id']}/audit").status_code == 200

    seen, cursor = [], None
    while True:
        page = api.get(f"/api/v1/leads/{ld['id']}/audit?limit=3" + (f"&cursor={cursor}" if cursor else "")).json
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [e["changes"].get("need", [None, None])[1] for e in seen] == [f"need {i}" for i in reversed(range(6))] + [None]
    assert [e["action"] for e in api.get(f"/api/v1/leads/{ld['id']}/audit?action=create").json["items"]] == ["create"]

    tag = api.post("/api/v1/tags", json={"name": "t"}).json
    log = api.get("/api/v1/audit?entity=tag").json["items"]
    assert [(e["entity"], e["entity_id"], e["action"]) for e in log] == [("tag", tag["id"], "create")]
    assert len(api.get(f"/api/v1/audit?entity=lead&entity_id={ld['id']}&action=update").json["items"]) == 6
    assert api.get("/api/v1/audit?after=2999-01-01T00:00:00Z").json["items"] == []
    assert api.get(f"/api/v1/tags/{tag['id']}/audit").json["items"][0]["changes"]["name"] == [None, "t"]
    assert as_role("admin", "other").get("/api/v1/audit").json["items"] == []
