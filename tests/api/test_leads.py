"""/api/v1/leads end to end: CRUD, validation, duplicates, ETags, filters, pagination,
permissions, tenant isolation, signals."""

from __future__ import annotations


def make(api, **data):
    body = {"name": "Ada Lovelace", **data}
    response = api.post("/api/v1/leads", json=body)
    assert response.status_code == 201, response.json
    return response.json


def test_create_read_update_delete(api):
    lead = make(api, email="Ada@Example.COM", phone="+44 20 7946 0018", estimated_value="12000.50", tags=["vip", "uk"])
    assert lead["email"] == "ada@example.com"
    assert lead["phone"] == "+442079460018"
    assert lead["estimated_value"] == "12000.50"
    assert lead["tags"] == ["uk", "vip"]
    assert lead["status"] == "new" and lead["source"] == "manual"

    got = api.get(f"/api/v1/leads/{lead['id']}")
    assert got.status_code == 200 and got.json["name"] == "Ada Lovelace"
    etag = got.headers["ETag"]

    changed = api.patch(f"/api/v1/leads/{lead['id']}", json={"status": "contacted", "tags": ["vip"]}, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.json
    assert changed.json["status"] == "contacted" and changed.json["tags"] == ["vip"]
    assert changed.headers["ETag"] != etag

    assert api.delete(f"/api/v1/leads/{lead['id']}").status_code == 204
    assert api.get(f"/api/v1/leads/{lead['id']}").status_code == 404


def test_validation_errors_are_422_with_field_messages(api):
    response = api.post("/api/v1/leads", json={"name": "", "email": "not-an-email", "status": "won", "phone": "12", "estimated_value": "-5", "owner_id": 999})
    assert response.status_code == 422
    errors = response.json["errors"]["json"]
    assert {"name", "email", "status", "phone", "estimated_value"} <= set(errors)
    ok_but_bad_owner = api.post("/api/v1/leads", json={"name": "X", "owner_id": 999, "source": "telepathy"})
    assert ok_but_bad_owner.status_code == 422
    assert set(ok_but_bad_owner.json["errors"]["json"]) == {"owner_id", "source"}
    assert api.post("/api/v1/leads", data="{not json", headers={"Content-Type": "application/json"}).status_code in (400, 422)


def test_duplicate_email_is_409_pointing_at_existing(api):
    first = make(api, email="dup@example.com")
    second = api.post("/api/v1/leads", json={"name": "Other", "email": "DUP@example.com"})
    assert second.status_code == 409
    assert second.json["existing"]["id"] == first["id"]
    other = make(api, name="Someone", email="someone@example.com")
    clash = api.patch(f"/api/v1/leads/{other['id']}", json={"email": "dup@example.com"})
    assert clash.status_code == 409
    assert api.get(f"/api/v1/leads/{other['id']}").json["email"] == "someone@example.com"


def test_stale_if_match_is_412_and_changes_nothing(api):
    lead = make(api)
    etag = api.get(f"/api/v1/leads/{lead['id']}").headers["ETag"]
    assert api.patch(f"/api/v1/leads/{lead['id']}", json={"name": "First"}, headers={"If-Match": etag}).status_code == 200
    stale = api.patch(f"/api/v1/leads/{lead['id']}", json={"name": "Second"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert api.get(f"/api/v1/leads/{lead['id']}").json["name"] == "First"
    assert api.delete(f"/api/v1/leads/{lead['id']}", headers={"If-Match": etag}).status_code == 412


def test_filters_search_sort_and_keyset_pagination(api):
    for i in range(25):
        make(api, name=f"Lead {i:02d}", email=f"l{i}@example.com", status="qualified" if i % 5 == 0 else "new", source="referral" if i % 2 else "form", tags=["hot"] if i < 3 else [])
    assert len(api.get("/api/v1/leads?status=qualified&limit=100").json["items"]) == 5
    assert len(api.get("/api/v1/leads?source=referral&limit=100").json["items"]) == 12
    assert [x["name"] for x in api.get("/api/v1/leads?tag=hot&sort=name").json["items"]] == ["Lead 00", "Lead 01", "Lead 02"]
    assert [x["name"] for x in api.get("/api/v1/leads?q=lead 1&sort=name&limit=3").json["items"]] == ["Lead 10", "Lead 11", "Lead 12"]
    assert [x["name"] for x in api.get("/api/v1/leads?q=l7@").json["items"]] == ["Lead 07"]

    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/leads?limit=7&sort=name" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [x["name"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"Lead {i:02d}" for i in range(25)]
    assert api.get("/api/v1/leads?cursor=garbage").status_code == 422
    assert api.get("/api/v1/leads?sort=password").status_code == 422
    assert api.get("/api/v1/leads?limit=100000").status_code == 422


def test_roles(as_role):
    viewer, agent, manager = as_role("viewer"), as_role("agent"), as_role("manager")
    assert viewer.get("/api/v1/leads").status_code == 200
    assert viewer.post("/api/v1/leads", json={"name": "x"}).status_code == 403
    lead = make(agent, name="Agent's")
    assert agent.delete(f"/api/v1/leads/{lead['id']}").status_code == 403
    assert manager.delete(f"/api/v1/leads/{lead['id']}").status_code == 204


def test_no_credentials_401(api_env):
    client = api_env.client("acme")
    assert client.get("/api/v1/leads").status_code == 401


def test_other_tenant_sees_nothing(api, as_role):
    lead = make(api, email="mine@example.com")
    other = as_role("admin", "other")
    assert other.get(f"/api/v1/leads/{lead['id']}").status_code == 404
    assert other.patch(f"/api/v1/leads/{lead['id']}", json={"name": "x"}).status_code == 404
    assert other.delete(f"/api/v1/leads/{lead['id']}").status_code == 404
    assert other.get("/api/v1/leads").json["items"] == []
    # The same email is free in another tenant.
    assert other.post("/api/v1/leads", json={"name": "Theirs", "email": "mine@example.com"}).status_code == 201


def test_signals_after_commit(api, captured_signals):
    with captured_signals("lead_created", "entity_updated") as sent:
        lead = make(api)
        api.patch(f"/api/v1/leads/{lead['id']}", json={"priority": "high"})
    names = [s[0] for s in sent]
    assert names == ["lead_created", "entity_updated"]
    assert sent[1][2]["changes"] == {"priority": ["medium", "high"]}
    assert sent[0][2]["actor"].role == "admin"


def test_default_pipeline_for_new_tenant(api_env):
    from crmcore import db
    from crmcore.db import tenant_context
    from crmcore.entities.models import Pipeline, Stage

    with db.database.connection_context():
        tenant = api_env.tenant("acme")
        with tenant_context(tenant):
            pipeline = Pipeline.get(Pipeline.is_default == True)  # noqa: E712
            stages = [(s.name, s.probability, s.is_won, s.is_lost) for s in Stage.select().where(Stage.pipeline == pipeline).order_by(Stage.order)]
    assert stages == [("Lead", 10, False, False), ("Qualified", 25, False, False), ("Proposal", 50, False, False), ("Negotiation", 75, False, False), ("Closed Won", 100, True, False), ("Closed Lost", 0, False, True)]


def test_agents_see_own_only_when_configured(api_env, as_role):
    api_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"agents_see_own_only": True}})
    api_env.reload()
    admin = as_role("admin")
    agent = as_role("agent")
    from crmcore import db
    from crmcore.db import tenant_context
    from crmcore.models import ApiToken

    with db.database.connection_context(), tenant_context(api_env.tenant("acme")):
        from crmcore import auth

        user = auth.create_user(api_env.tenant("acme"), "agent@acme.test", "pw-123456", role="agent")
        ApiToken.update(user=user).where(ApiToken.role == "agent").execute()
    mine = make(admin, name="Mine", owner_id=user.id)
    nobodys = make(admin, name="Unassigned")
    theirs = make(admin, name="Admin's", owner_id=None)
    admin.patch(f"/api/v1/leads/{theirs['id']}", json={"owner_id": None})
    with db.database.connection_context(), tenant_context(api_env.tenant("acme")):
        other = auth.create_user(api_env.tenant("acme"), "other@acme.test", "pw-123456", role="agent")
    hidden = make(admin, name="Someone else's", owner_id=other.id)
    names = sorted(x["name"] for x in agent.get("/api/v1/leads").json["items"])
    assert names == sorted(["Mine", "Unassigned", "Admin's"])
    assert agent.get(f"/api/v1/leads/{hidden['id']}").status_code == 404
    assert agent.get(f"/api/v1/leads/{mine['id']}").status_code == 200
    assert nobodys
