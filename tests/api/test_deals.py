"""/api/v1/deals end to end: defaults from the pipeline and tenant, CRUD, validation,
ETags, stage changes (history, signal, probability, closed_at, lost reason), filters,
pagination, roles, tenant isolation."""

from __future__ import annotations

import contextlib

from crmcore import db
from crmcore.db import tenant_context


def make(api, **data):
    response = api.post("/api/v1/deals", json={"title": "Big deal", **data})
    assert response.status_code == 201, response.json
    return response.json


def sales(api):
    return next(p for p in api.get("/api/v1/pipelines").json["items"] if p["is_default"])


def stage(pipeline, name):
    return next(s for s in pipeline["stages"] if s["name"] == name)


@contextlib.contextmanager
def in_tenant(api_env, slug="acme"):
    """Direct database access as ``slug`` (for set-up the deals API does not offer)."""
    with db.database.connection_context(), tenant_context(api_env.tenant(slug)):
        yield


def make_user(api_env, email, slug="acme", role="agent"):
    from crmcore import auth

    return auth.create_user(api_env.tenant(slug), email, "pw-123456", role=role)


def test_defaults_from_default_pipeline_and_tenant(api, api_env):
    deal = make(api)
    pipeline = sales(api)
    assert deal["pipeline_id"] == pipeline["id"] and deal["stage_id"] == stage(pipeline, "Lead")["id"]
    assert deal["probability"] == 10 and deal["currency"] == "EUR" and deal["value"] == "0.00"
    assert deal["status"] == "open" and deal["closed_at"] is None and deal["priority"] == "medium"
    second = make(api, title="Second")
    assert second["position"] > deal["position"]  # new deals go to the bottom of the column

    proposal = stage(pipeline, "Proposal")
    placed = make(api, stage_id=proposal["id"], probability=60, currency="usd")
    assert placed["stage_id"] == proposal["id"] and placed["probability"] == 60 and placed["currency"] == "USD"

    api_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"default_currency": "GBP"}})
    api_env.reload()
    assert make(api)["currency"] == "GBP"


def test_create_read_update_delete(api):
    deal = make(api, value="12000.5", expected_close_date="2030-06-30", tags=["big", "q2"], priority="high", source="referral")
    assert deal["value"] == "12000.50" and deal["tags"] == ["big", "q2"]
    assert deal["expected_close_date"] == "2030-06-30"
    got = api.get(f"/api/v1/deals/{deal['id']}")
    assert got.status_code == 200 and got.json["title"] == "Big deal"
    etag = got.headers["ETag"]
    changed = api.patch(f"/api/v1/deals/{deal['id']}", json={"value": "15000", "tags": ["big"]}, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.json
    assert changed.json["value"] == "15000.00" and changed.json["tags"] == ["big"]
    assert changed.headers["ETag"] != etag
    assert api.patch(f"/api/v1/deals/{deal['id']}", json={"title": "Stale"}, headers={"If-Match": etag}).status_code == 412
    assert api.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": deal["stage_id"] + 1}, headers={"If-Match": etag}).status_code == 412
    assert api.delete(f"/api/v1/deals/{deal['id']}", headers={"If-Match": etag}).status_code == 412
    assert api.get(f"/api/v1/deals/{deal['id']}").json["title"] == "Big deal"
    assert api.delete(f"/api/v1/deals/{deal['id']}").status_code == 204
    assert api.get(f"/api/v1/deals/{deal['id']}").status_code == 404


def test_validation_errors_are_422(api):
    response = api.post("/api/v1/deals", json={"title": "", "value": "-1", "probability": 101, "priority": "urgent", "currency": "EURO", "expected_close_date": "soon", "closed_at": "2020-01-01T00:00:00"})
    assert response.status_code == 422
    assert {"title", "value", "probability", "priority", "currency", "expected_close_date"} <= set(response.json["errors"]["json"])
    assert api.post("/api/v1/deals", json={"title": "x", "value": "1e20"}).status_code == 422

    refs = api.post("/api/v1/deals", json={"title": "x", "currency": "XYZ", "contact_id": 999, "company_id": 999, "owner_id": 999, "lead_id": 999})
    assert refs.status_code == 422
    assert set(refs.json["errors"]["json"]) == {"currency", "contact_id", "company_id", "owner_id", "lead_id"}
    assert set(api.post("/api/v1/deals", json={"title": "x", "pipeline_id": 999}).json["errors"]["json"]) == {"pipeline_id"}
    assert set(api.post("/api/v1/deals", json={"title": "x", "stage_id": 999}).json["errors"]["json"]) == {"stage_id"}

    other = api.post("/api/v1/pipelines", json={"name": "Other", "stages": [{"name": "One"}]}).json
    pipeline = sales(api)
    mismatch = api.post("/api/v1/deals", json={"title": "x", "pipeline_id": pipeline["id"], "stage_id": other["stages"][0]["id"]})
    assert mismatch.status_code == 422 and "stage_id" in mismatch.json["errors"]["json"]
    empty = api.post("/api/v1/pipelines", json={"name": "Empty"}).json
    assert "pipeline_id" in api.post("/api/v1/deals", json={"title": "x", "pipeline_id": empty["id"]}).json["errors"]["json"]

    lost = stage(pipeline, "Closed Lost")
    assert "lost_reason" in api.post("/api/v1/deals", json={"title": "x", "stage_id": lost["id"]}).json["errors"]["json"]
    assert "lost_reason" in api.post("/api/v1/deals", json={"title": "x", "lost_reason": "price"}).json["errors"]["json"]
    closed = make(api, stage_id=lost["id"], lost_reason="Went with a competitor")
    assert closed["status"] == "lost" and closed["closed_at"] is not None and closed["probability"] == 0

    deal = make(api)
    for body in ({"pipeline_id": None}, {"stage_id": None}, {"title": None}, {"closed_at": "2020-01-01T00:00:00"}):
        assert api.patch(f"/api/v1/deals/{deal['id']}", json=body).status_code == 422, body
    assert api.patch(f"/api/v1/deals/{closed['id']}", json={"lost_reason": None}).status_code == 422


def test_custom_fields(api, api_env):
    from crmcore.entities.models import CustomField

    with in_tenant(api_env):
        CustomField.create(entity="deal", key="region", label="Region", kind="choice", choices=["emea", "apac"], required=True)
    assert "custom" in api.post("/api/v1/deals", json={"title": "x"}).json["errors"]["json"]
    assert "custom" in api.post("/api/v1/deals", json={"title": "x", "custom": {"region": "mars"}}).json["errors"]["json"]
    deal = make(api, custom={"region": "emea"})
    assert deal["custom"] == {"region": "emea"}
    assert api.patch(f"/api/v1/deals/{deal['id']}", json={"custom": {"region": "apac"}}).json["custom"] == {"region": "apac"}


def test_references_are_linked(api, api_env):
    from crmcore.entities import service
    from crmcore.entities.models import Company, Contact

    with in_tenant(api_env):
        company = service.create(Company, {"name": "Initech"})
        contact = service.create(Contact, {"first_name": "Peter", "email": "peter@initech.test", "company": company.id})
    user = make_user(api_env, "rep@acme.test")
    lead = api.post("/api/v1/leads", json={"name": "Peter"}).json
    deal = make(api, contact_id=contact.id, company_id=company.id, owner_id=user.id, lead_id=lead["id"])
    assert (deal["contact_id"], deal["company_id"], deal["owner_id"], deal["lead_id"]) == (contact.id, company.id, user.id, lead["id"])
    unlinked = api.patch(f"/api/v1/deals/{deal['id']}", json={"contact_id": None, "owner_id": None})
    assert unlinked.json["contact_id"] is None and unlinked.json["owner_id"] is None and unlinked.json["company_id"] == company.id


def test_stage_change_history_signal_probability_and_closed_at(api, api_env, as_role, captured_signals):
    from crmcore.models import ApiToken

    user = make_user(api_env, "closer@acme.test", role="manager")
    manager = as_role("manager")
    with in_tenant(api_env):
        ApiToken.update(user=user).where(ApiToken.role == "manager").execute()
    pipeline = sales(api)
    lead_stage, proposal, won, lost, qualified = (stage(pipeline, n) for n in ("Lead", "Proposal", "Closed Won", "Closed Lost", "Qualified"))
    deal = make(manager)
    assert api.get(f"/api/v1/deals/{deal['id']}/stage-history").json["items"] == []

    with captured_signals("deal_stage_changed", "deal_updated") as sent:
        moved = manager.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": proposal["id"]})
    assert moved.status_code == 200, moved.json
    assert moved.json["probability"] == 50 and moved.json["status"] == "open" and moved.json["closed_at"] is None
    changes = [s for s in sent if s[0] == "deal_stage_changed"]
    assert len(changes) == 1
    assert changes[0][2]["from_stage_id"] == lead_stage["id"] and changes[0][2]["to_stage_id"] == proposal["id"]
    assert changes[0][2]["deal"].id == deal["id"] and changes[0][1].slug == "acme"

    # An explicit probability wins over the stage's.
    custom_probability = manager.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": qualified["id"], "probability": 33, "title": "Renamed"})
    assert custom_probability.json["probability"] == 33 and custom_probability.json["title"] == "Renamed"

    refused = manager.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": lost["id"]})
    assert refused.status_code == 422 and "lost_reason" in refused.json["errors"]["json"]
    assert api.get(f"/api/v1/deals/{deal['id']}").json["stage_id"] == qualified["id"]  # nothing moved

    lost_deal = manager.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": lost["id"], "lost_reason": "Budget cut"}).json
    assert lost_deal["status"] == "lost" and lost_deal["lost_reason"] == "Budget cut" and lost_deal["closed_at"] is not None
    assert lost_deal["probability"] == 0
    reopened = manager.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": proposal["id"]}).json
    assert reopened["closed_at"] is None and reopened["lost_reason"] is None and reopened["status"] == "open"
    won_deal = manager.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": won["id"]}).json
    assert won_deal["status"] == "won" and won_deal["closed_at"] is not None and won_deal["probability"] == 100
    assert manager.patch(f"/api/v1/deals/{deal['id']}", json={"title": "Same stage"}).json["closed_at"] == won_deal["closed_at"]

    history = api.get(f"/api/v1/deals/{deal['id']}/stage-history").json["items"]
    path = [(h["from_stage_name"], h["to_stage_name"]) for h in history]
    assert path == [("Proposal", "Closed Won"), ("Closed Lost", "Proposal"), ("Qualified", "Closed Lost"), ("Proposal", "Qualified"), ("Lead", "Proposal")]
    assert all(h["changed_by_id"] == user.id for h in history)
    assert all(h["seconds_in_previous"] >= 0 for h in history)
    assert history[0]["changed_at"] >= history[-1]["changed_at"]

    from crmcore.entities.models import AuditEntry

    with in_tenant(api_env):
        actions = [a for (a,) in AuditEntry.select(AuditEntry.action).where((AuditEntry.entity == "deal") & (AuditEntry.entity_id == deal["id"])).tuples()]
    assert actions.count("stage_change") == 5


def test_pipeline_change(api):
    other = api.post("/api/v1/pipelines", json={"name": "Partners", "stages": [{"name": "Intro", "probability": 15}, {"name": "Signed", "is_won": True}]}).json
    deal = make(api)
    moved = api.patch(f"/api/v1/deals/{deal['id']}", json={"pipeline_id": other["id"]})
    assert moved.status_code == 200, moved.json
    assert moved.json["pipeline_id"] == other["id"] and moved.json["stage_id"] == other["stages"][0]["id"] and moved.json["probability"] == 15
    # A stage alone must be of the deal's pipeline; with the pipeline it may move across.
    default_stage = sales(api)["stages"][1]["id"]
    assert "stage_id" in api.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": default_stage}).json["errors"]["json"]
    back = api.patch(f"/api/v1/deals/{deal['id']}", json={"pipeline_id": sales(api)["id"], "stage_id": default_stage})
    assert back.status_code == 200 and back.json["stage_id"] == default_stage
    created = make(api, stage_id=other["stages"][1]["id"])  # the stage decides the pipeline
    assert created["pipeline_id"] == other["id"] and created["status"] == "won"


def test_filters_sort_and_keyset_pagination(api, api_env):
    user = make_user(api_env, "owner@acme.test")
    pipeline = sales(api)
    won, lost = stage(pipeline, "Closed Won"), stage(pipeline, "Closed Lost")
    for i in range(15):
        extra = {"stage_id": won["id"]} if i % 5 == 0 else {"stage_id": lost["id"], "lost_reason": "no"} if i % 5 == 1 else {}
        make(api, title=f"Deal {i:02d}", value=str(i * 1000), owner_id=user.id if i < 4 else None, tags=["hot"] if i in (2, 3) else [], **extra)
    def titles(query):
        response = api.get(f"/api/v1/deals?limit=100&sort=title&{query}")
        assert response.status_code == 200, response.json
        return [d["title"] for d in response.json["items"]]

    assert titles("status=won") == ["Deal 00", "Deal 05", "Deal 10"]
    assert titles("status=lost&status=won") == ["Deal 00", "Deal 01", "Deal 05", "Deal 06", "Deal 10", "Deal 11"]
    assert len(titles("status=open")) == 9
    assert titles(f"stage_id={lost['id']}") == ["Deal 01", "Deal 06", "Deal 11"]
    assert titles(f"owner_id={user.id}") == ["Deal 00", "Deal 01", "Deal 02", "Deal 03"]
    assert len(titles("owner_id=0")) == 11
    assert titles("tag=hot") == ["Deal 02", "Deal 03"]
    assert titles("min_value=3000&max_value=5000") == ["Deal 03", "Deal 04", "Deal 05"]
    assert titles("q=deal 1") == ["Deal 10", "Deal 11", "Deal 12", "Deal 13", "Deal 14"]
    assert len(titles(f"pipeline_id={pipeline['id']}")) == 15
    assert titles("pipeline_id=999") == []
    assert titles("created_after=2000-01-01T00:00:00Z&updated_before=2999-01-01T00:00:00Z")[:1] == ["Deal 00"]
    assert titles("created_before=2000-01-01T00:00:00") == []
    by_value = api.get("/api/v1/deals?sort=-value&limit=3").json["items"]
    assert [d["value"] for d in by_value] == ["14000.00", "13000.00", "12000.00"]

    for sort in ("value", "-created_at", "title"):
        seen, cursor = [], None
        while True:
            page = api.get(f"/api/v1/deals?limit=4&sort={sort}" + (f"&cursor={cursor}" if cursor else "")).json
            seen += [d["title"] for d in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == [f"Deal {i:02d}" for i in range(15)] and len(seen) == 15, sort
        if sort in ("value", "title"):
            assert seen == [f"Deal {i:02d}" for i in range(15)]
    for bad in ("cursor=garbage", "sort=secret", "status=maybe", "min_value=lots", "limit=0"):
        assert api.get(f"/api/v1/deals?{bad}").status_code == 422, bad


def test_roles(as_role):
    viewer, agent, manager = as_role("viewer"), as_role("agent"), as_role("manager")
    assert viewer.get("/api/v1/deals").status_code == 200
    assert viewer.post("/api/v1/deals", json={"title": "x"}).status_code == 403
    deal = make(agent, title="Agent's")
    assert viewer.get(f"/api/v1/deals/{deal['id']}/stage-history").status_code == 200
    assert viewer.patch(f"/api/v1/deals/{deal['id']}", json={"title": "x"}).status_code == 403
    assert agent.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": deal["stage_id"] + 1}).status_code == 200
    assert agent.delete(f"/api/v1/deals/{deal['id']}").status_code == 403
    assert manager.delete(f"/api/v1/deals/{deal['id']}").status_code == 204


def test_agents_see_own_only_when_configured(api, api_env, as_role):
    from crmcore.models import ApiToken

    api_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"agents_see_own_only": True}})
    api_env.reload()
    agent = as_role("agent")
    me, colleague = make_user(api_env, "me@acme.test"), make_user(api_env, "colleague@acme.test")
    with in_tenant(api_env):
        ApiToken.update(user=me).where(ApiToken.role == "agent").execute()
    mine = make(api, title="Mine", owner_id=me.id)
    make(api, title="Nobody's")
    theirs = make(api, title="Theirs", owner_id=colleague.id)
    assert sorted(d["title"] for d in agent.get("/api/v1/deals").json["items"]) == ["Mine", "Nobody's"]
    assert agent.get(f"/api/v1/deals/{theirs['id']}").status_code == 404
    assert agent.get(f"/api/v1/deals/{theirs['id']}/stage-history").status_code == 404
    assert agent.get(f"/api/v1/deals/{mine['id']}").status_code == 200
    # Nor link records they cannot see.
    hidden_lead = api.post("/api/v1/leads", json={"name": "Hidden", "owner_id": colleague.id}).json
    assert set(agent.post("/api/v1/deals", json={"title": "x", "lead_id": hidden_lead["id"]}).json["errors"]["json"]) == {"lead_id"}
    assert agent.patch(f"/api/v1/deals/{mine['id']}", json={"lead_id": hidden_lead["id"]}).status_code == 422
    assert api.patch(f"/api/v1/deals/{mine['id']}", json={"lead_id": hidden_lead["id"]}).status_code == 200


def test_no_credentials_401(api_env):
    client = api_env.client("acme")
    assert client.get("/api/v1/deals").status_code == 401
    assert client.post("/api/v1/deals", json={"title": "x"}).status_code == 401


def test_other_tenant_sees_nothing_and_cannot_use_my_records(api, api_env, as_role):
    from crmcore.entities import service
    from crmcore.entities.models import Company, Contact

    deal = make(api)
    other = as_role("admin", "other")
    for call in (other.get, other.delete):
        assert call(f"/api/v1/deals/{deal['id']}").status_code == 404
    assert other.patch(f"/api/v1/deals/{deal['id']}", json={"title": "x"}).status_code == 404
    assert other.get(f"/api/v1/deals/{deal['id']}/stage-history").status_code == 404
    assert other.get("/api/v1/deals").json["items"] == []

    mine = sales(api)
    proposal = stage(mine, "Proposal")
    with in_tenant(api_env):
        contact = service.create(Contact, {"first_name": "Mine"})
        company = service.create(Company, {"name": "Mine Ltd"})
    for body in ({"stage_id": proposal["id"]}, {"pipeline_id": mine["id"]}, {"contact_id": contact.id}, {"company_id": company.id}, {"lead_id": api.post("/api/v1/leads", json={"name": "L"}).json["id"]}):
        response = other.post("/api/v1/deals", json={"title": "x", **body})
        assert response.status_code == 422, body
        assert set(response.json["errors"]["json"]) == {next(iter(body))}
    theirs = other.post("/api/v1/deals", json={"title": "Theirs"}).json
    assert other.patch(f"/api/v1/deals/{theirs['id']}", json={"stage_id": proposal["id"]}).status_code == 422
    assert other.patch(f"/api/v1/deals/{theirs['id']}", json={"pipeline_id": mine["id"], "stage_id": proposal["id"]}).status_code == 422
    assert api.get(f"/api/v1/deals?stage_id={proposal['id']}").json["items"] == []
