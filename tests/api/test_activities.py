"""/api/v1/activities end to end: CRUD, links, the lead's last_contact_at, validation,
ETags, filters, pagination, roles, tenant isolation, signals."""

from __future__ import annotations

from contextlib import contextmanager

from crmcore import auth, db
from crmcore.db import tenant_context
from tests.api.conftest import Api


@contextmanager
def in_tenant(env, slug="acme"):
    """Direct database access as tenant ``slug`` (for setup the API does not offer)."""
    tenant = env.tenant(slug)
    with db.connection(), tenant_context(tenant):
        yield tenant


def make_user(email, role="agent"):
    """A user of the current tenant (no password: hashing one is slow, and the API
    tests sign in with tokens)."""
    from crmcore.models import User

    return User.create(email=email, name=email.split("@")[0], role=role)


def user_api(env, role="admin", slug="acme", email=None):
    """An Api whose token belongs to a new user: (api, user id)."""
    with in_tenant(env, slug) as tenant:
        user = make_user(email or f"{role}-user@{slug}.test", role)
        secret = auth.create_token(tenant, role, name="user token", user=user)[1]
    api = Api(env, slug, role)
    api.token = secret
    return api, user.id


def lead(api, **data):
    response = api.post("/api/v1/leads", json={"name": "Grace Hopper", **data})
    assert response.status_code == 201, response.json
    return response.json


def log(api, **data):
    response = api.post("/api/v1/activities", json={"kind": "call", **data})
    assert response.status_code == 201, response.json
    return response.json


def test_crud_and_last_contact_on_the_lead(api):
    ld = lead(api)
    assert ld["last_contact_at"] is None
    act = log(api, lead_id=ld["id"], direction="out", channel="phone", subject="Intro call", content="Talked budget", outcome="interested", next_step="Send offer", sentiment=0.5, occurred_at="2024-03-01T10:00:00+02:00", duration_seconds=300)
    assert act["occurred_at"].startswith("2024-03-01T08:00:00")
    assert act["lead_id"] == ld["id"] and act["contact_id"] is None and act["sentiment"] == 0.5
    assert api.get(f"/api/v1/leads/{ld['id']}").json["last_contact_at"].startswith("2024-03-01T08:00:00")

    got = api.get(f"/api/v1/activities/{act['id']}")
    assert got.status_code == 200 and got.json["subject"] == "Intro call"
    etag = got.headers["ETag"]
    changed = api.patch(f"/api/v1/activities/{act['id']}", json={"outcome": "very interested", "occurred_at": "2024-03-02T09:00:00Z"}, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.json
    assert changed.json["outcome"] == "very interested" and changed.headers["ETag"] != etag
    assert api.get(f"/api/v1/leads/{ld['id']}").json["last_contact_at"].startswith("2024-03-02T09:00:00")
    assert api.patch(f"/api/v1/activities/{act['id']}", json={"outcome": "stale"}, headers={"If-Match": etag}).status_code == 412
    assert api.delete(f"/api/v1/activities/{act['id']}", headers={"If-Match": etag}).status_code == 412

    assert api.delete(f"/api/v1/activities/{act['id']}").status_code == 204
    assert api.get(f"/api/v1/activities/{act['id']}").status_code == 404
    # The lead's change went through the service: it is in the lead's audit.
    trail = api.get(f"/api/v1/leads/{ld['id']}/audit").json["items"]
    assert any(e["changes"].get("last_contact_at", [None, ""])[1].startswith("2024-03-01T08:00:00") for e in trail)


def test_last_contact_never_moves_back_and_needs_a_direction(api):
    ld = lead(api)
    log(api, lead_id=ld["id"], direction="in", occurred_at="2024-05-01T12:00:00Z")
    log(api, lead_id=ld["id"], direction="out", occurred_at="2024-04-01T12:00:00Z")
    log(api, lead_id=ld["id"], kind="note", occurred_at="2024-06-01T12:00:00Z")
    assert api.get(f"/api/v1/leads/{ld['id']}").json["last_contact_at"].startswith("2024-05-01T12:00:00")


def test_links_to_contacts_companies_deals(api, api_env):
    from crmcore.entities import service
    from crmcore.entities.models import Company, Contact, Deal, Stage

    with in_tenant(api_env):
        company = service.create(Company, {"name": "Acme Corp"})
        contact = service.create(Contact, {"first_name": "Ann", "last_name": "Lee", "company": company.id})
        pipeline = service.ensure_default_pipeline(db.current_tenant())
        stage = Stage.select().where(Stage.pipeline == pipeline).order_by(Stage.order).first()
        deal = service.create(Deal, {"title": "Big one", "pipeline": pipeline.id, "stage": stage.id})
    act = log(api, kind="meeting", contact_id=contact.id, company_id=company.id, deal_id=deal.id)
    assert (act["contact_id"], act["company_id"], act["deal_id"]) == (contact.id, company.id, deal.id)
    assert [a["id"] for a in api.get(f"/api/v1/activities?deal_id={deal.id}").json["items"]] == [act["id"]]
    assert api.get(f"/api/v1/activities?company_id={company.id}&contact_id={contact.id}").json["items"][0]["id"] == act["id"]
    assert api.get(f"/api/v1/activities?lead_id={act['id'] + 1000}").json["items"] == []
    # Unlinking everything is refused; moving to another link is fine.
    assert api.patch(f"/api/v1/activities/{act['id']}", json={"contact_id": None, "company_id": None, "deal_id": None}).status_code == 422
    assert api.patch(f"/api/v1/activities/{act['id']}", json={"contact_id": None, "company_id": None}).status_code == 200


def test_validation_422(api, as_role):
    theirs = lead(as_role("admin", "other"), name="Not yours")
    response = api.post("/api/v1/activities", json={"kind": "fax", "direction": "up", "sentiment": 2, "duration_seconds": -1, "occurred_at": "yesterday"})
    assert response.status_code == 422
    assert {"kind", "direction", "sentiment", "duration_seconds", "occurred_at"} <= set(response.json["errors"]["json"])
    no_link = api.post("/api/v1/activities", json={"kind": "call"})
    assert no_link.status_code == 422 and "_schema" in no_link.json["errors"]["json"]
    bad_refs = api.post("/api/v1/activities", json={"kind": "call", "lead_id": theirs["id"], "contact_id": 999, "user_id": 999})
    assert bad_refs.status_code == 422
    assert set(bad_refs.json["errors"]["json"]) == {"lead_id", "contact_id", "user_id"}
    assert api.get("/api/v1/activities").json["items"] == []


def test_filters_and_keyset_pagination(api, api_env):
    me, my_id = user_api(api_env, "agent")
    ld, other = lead(api), lead(api, name="Other", email="o@example.com")
    for day in range(1, 13):
        log(api, lead_id=ld["id"] if day % 2 else other["id"], kind="email" if day % 3 == 0 else "call", occurred_at=f"2024-01-{day:02d}T09:00:00Z")
    mine = log(me, lead_id=ld["id"], kind="sms", occurred_at="2023-12-31T23:00:00Z")
    assert mine["user_id"] == my_id
    same_time = [log(api, lead_id=ld["id"], occurred_at="2024-01-05T09:00:00Z") for _ in range(2)]

    assert len(api.get("/api/v1/activities?kind=email").json["items"]) == 4
    assert len(api.get("/api/v1/activities?kind=email&kind=sms").json["items"]) == 5
    assert [a["id"] for a in api.get(f"/api/v1/activities?user_id={my_id}").json["items"]] == [mine["id"]]
    assert len(api.get("/api/v1/activities?user_id=0").json["items"]) == 14  # bare tokens have no user
    assert len(api.get(f"/api/v1/activities?lead_id={other['id']}").json["items"]) == 6
    window = api.get("/api/v1/activities?occurred_after=2024-01-03T09:00:00Z&occurred_before=2024-01-06T09:00:00Z").json["items"]
    assert [a["occurred_at"][:10] for a in window] == ["2024-01-05"] * 3 + ["2024-01-04", "2024-01-03"]

    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/activities?limit=4" + (f"&cursor={cursor}" if cursor else "")).json
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 15 and len({a["id"] for a in seen}) == 15
    assert [a["occurred_at"] for a in seen] == sorted((a["occurred_at"] for a in seen), reverse=True)
    assert {a["id"] for a in same_time} <= {a["id"] for a in seen}
    assert seen[-1]["id"] == mine["id"]
    oldest_first = api.get("/api/v1/activities?sort=occurred_at&limit=1").json["items"]
    assert oldest_first[0]["id"] == mine["id"]
    assert api.get("/api/v1/activities?cursor=nonsense").status_code == 422
    assert api.get("/api/v1/activities?sort=subject").status_code == 422
    assert api.get("/api/v1/activities?kind=fax").status_code == 422


def test_roles_and_401(api, as_role, api_env):
    ld = lead(api)
    viewer, agent, manager = as_role("viewer"), as_role("agent"), as_role("manager")
    assert viewer.get("/api/v1/activities").status_code == 200
    assert viewer.post("/api/v1/activities", json={"kind": "call", "lead_id": ld["id"]}).status_code == 403
    act = log(agent, lead_id=ld["id"])
    assert agent.patch(f"/api/v1/activities/{act['id']}", json={"subject": "x"}).status_code == 200
    assert agent.delete(f"/api/v1/activities/{act['id']}").status_code == 403
    assert manager.delete(f"/api/v1/activities/{act['id']}").status_code == 204
    assert api_env.client("acme").get("/api/v1/activities").status_code == 401
    assert api_env.client("acme").post("/api/v1/activities", json={}).status_code == 401


def test_other_tenant_gets_404(api, as_role):
    act = log(api, lead_id=lead(api)["id"])
    other = as_role("admin", "other")
    assert other.get(f"/api/v1/activities/{act['id']}").status_code == 404
    assert other.patch(f"/api/v1/activities/{act['id']}", json={"subject": "x"}).status_code == 404
    assert other.delete(f"/api/v1/activities/{act['id']}").status_code == 404
    assert other.get("/api/v1/activities").json["items"] == []
    assert api.get(f"/api/v1/activities/{act['id']}").json["subject"] == ""


def test_activity_created_is_the_logged_signal(api, captured_signals):
    ld = lead(api)
    with captured_signals("activity_created", "lead_updated") as sent:
        act = log(api, lead_id=ld["id"], direction="in")
    assert [s[0] for s in sent] == ["activity_created", "lead_updated"]
    assert sent[0][2]["record"].id == act["id"]
    assert set(sent[1][2]["changes"]) == {"last_contact_at"}


def test_agents_see_activities_of_visible_records_only(api_env, as_role):
    api_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"agents_see_own_only": True}})
    api_env.reload()
    admin = as_role("admin")
    agent, agent_id = user_api(api_env, "agent")
    with in_tenant(api_env):
        someone = make_user("someone@acme.test")
    mine, hidden = lead(admin, name="Mine", owner_id=agent_id), lead(admin, name="Theirs", owner_id=someone.id)
    shown, secret = log(admin, lead_id=mine["id"]), log(admin, lead_id=hidden["id"])
    assert [a["id"] for a in agent.get("/api/v1/activities").json["items"]] == [shown["id"]]
    assert agent.get(f"/api/v1/activities/{secret['id']}").status_code == 404
    assert agent.post("/api/v1/activities", json={"kind": "call", "lead_id": hidden["id"]}).status_code == 422
    assert len(admin.get("/api/v1/activities").json["items"]) == 2
