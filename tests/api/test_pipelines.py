"""/api/v1/pipelines and /api/v1/stages end to end: CRUD, the default pipeline, stage
validation, ETags, reordering, deleting stages with deals (move_to), roles, tenants."""

from __future__ import annotations

STAGES = [
    {"name": "New", "probability": 10},
    {"name": "Demo", "probability": 40, "colour": "#112233", "expected_days": 7},
    {"name": "Won", "probability": 100, "is_won": True},
    {"name": "Lost", "probability": 0, "is_lost": True},
]


def make_pipeline(api, name="Partners", stages=STAGES, **data):
    response = api.post("/api/v1/pipelines", json={"name": name, "stages": stages, **data})
    assert response.status_code == 201, response.json
    return response.json


def default_pipeline(api):
    return next(p for p in api.get("/api/v1/pipelines").json["items"] if p["is_default"])


def make_deal(api, **data):
    response = api.post("/api/v1/deals", json={"title": "Deal", **data})
    assert response.status_code == 201, response.json
    return response.json


def test_default_pipeline_is_listed_with_its_stages_in_order(api):
    items = api.get("/api/v1/pipelines").json["items"]
    assert [(p["name"], p["is_default"]) for p in items] == [("Sales", True)]
    stages = items[0]["stages"]
    assert [s["name"] for s in stages] == ["Lead", "Qualified", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]
    assert [s["order"] for s in stages] == list(range(6))
    listed = api.get(f"/api/v1/pipelines/{items[0]['id']}/stages").json["items"]
    assert listed == stages


def test_create_read_update_delete_pipeline(api):
    pipeline = make_pipeline(api, order=3)
    assert pipeline["is_default"] is False and pipeline["order"] == 3
    assert [(s["name"], s["order"], s["probability"]) for s in pipeline["stages"]] == [("New", 0, 10), ("Demo", 1, 40), ("Won", 2, 100), ("Lost", 3, 0)]
    demo = pipeline["stages"][1]
    assert demo["colour"] == "#112233" and demo["expected_days"] == 7 and demo["pipeline_id"] == pipeline["id"]

    got = api.get(f"/api/v1/pipelines/{pipeline['id']}")
    assert got.status_code == 200 and got.json["name"] == "Partners"
    etag = got.headers["ETag"]
    changed = api.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"name": "Channel"}, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.json["name"] == "Channel"
    assert api.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"name": "Stale"}, headers={"If-Match": etag}).status_code == 412
    assert api.delete(f"/api/v1/pipelines/{pipeline['id']}", headers={"If-Match": etag}).status_code == 412
    assert api.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"stages": []}).status_code == 422

    assert api.delete(f"/api/v1/pipelines/{pipeline['id']}").status_code == 204
    assert api.get(f"/api/v1/pipelines/{pipeline['id']}").status_code == 404
    assert api.get(f"/api/v1/stages/{demo['id']}").status_code == 404  # its stages went with it


def test_one_default_pipeline(api):
    sales = default_pipeline(api)
    assert api.patch(f"/api/v1/pipelines/{sales['id']}", json={"is_default": False}).status_code == 422
    assert api.delete(f"/api/v1/pipelines/{sales['id']}").status_code == 409
    partners = make_pipeline(api, is_default=True)
    assert partners["is_default"] is True
    assert api.get(f"/api/v1/pipelines/{sales['id']}").json["is_default"] is False
    deal = make_deal(api)
    assert deal["pipeline_id"] == partners["id"] and deal["stage_id"] == partners["stages"][0]["id"]
    assert api.patch(f"/api/v1/pipelines/{sales['id']}", json={"is_default": True}).status_code == 200
    assert [p["name"] for p in api.get("/api/v1/pipelines").json["items"] if p["is_default"]] == ["Sales"]


def test_pipeline_with_deals_cannot_be_deleted(api):
    pipeline = make_pipeline(api)
    deal = make_deal(api, pipeline_id=pipeline["id"])
    response = api.delete(f"/api/v1/pipelines/{pipeline['id']}")
    assert response.status_code == 409 and "1 deal" in response.json["message"]
    assert api.delete(f"/api/v1/deals/{deal['id']}").status_code == 204
    assert api.delete(f"/api/v1/pipelines/{pipeline['id']}").status_code == 204


def test_pipeline_validation_and_pagination(api):
    bad = api.post("/api/v1/pipelines", json={"name": "", "order": -1, "stages": [{"name": "x", "is_won": True, "is_lost": True}]})
    assert bad.status_code == 422
    errors = bad.json["errors"]["json"]
    assert {"name", "order", "stages"} <= set(errors)
    for i in range(4):
        make_pipeline(api, name=f"P{i}", order=i + 1, stages=[])
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/pipelines?limit=2" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [p["name"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["Sales", "P0", "P1", "P2", "P3"]
    assert [p["name"] for p in api.get("/api/v1/pipelines?q=p2").json["items"]] == ["P2"]
    assert api.get("/api/v1/pipelines?sort=secret").status_code == 422


def test_stage_create_read_update_delete(api):
    sales = default_pipeline(api)
    created = api.post(f"/api/v1/pipelines/{sales['id']}/stages", json={"name": "On hold", "probability": 5, "colour": "#abcdef"})
    assert created.status_code == 201, created.json
    stage = created.json
    assert stage["order"] == 6 and stage["is_won"] is False and stage["pipeline_id"] == sales["id"]
    etag = api.get(f"/api/v1/stages/{stage['id']}").headers["ETag"]
    changed = api.patch(f"/api/v1/stages/{stage['id']}", json={"name": "Paused", "expected_days": 30}, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.json["name"] == "Paused" and changed.json["expected_days"] == 30
    assert api.patch(f"/api/v1/stages/{stage['id']}", json={"name": "Stale"}, headers={"If-Match": etag}).status_code == 412
    assert api.delete(f"/api/v1/stages/{stage['id']}").status_code == 204
    assert api.get(f"/api/v1/stages/{stage['id']}").status_code == 404


def test_stage_validation(api):
    sales = default_pipeline(api)
    url = f"/api/v1/pipelines/{sales['id']}/stages"
    both = api.post(url, json={"name": "Odd", "is_won": True, "is_lost": True})
    assert both.status_code == 422 and "is_lost" in both.json["errors"]["json"]
    bad = api.post(url, json={"name": "", "probability": 101, "colour": "red", "expected_days": -1})
    assert bad.status_code == 422
    assert set(bad.json["errors"]["json"]) == {"name", "probability", "colour", "expected_days"}
    lost = next(s for s in sales["stages"] if s["is_lost"])
    response = api.patch(f"/api/v1/stages/{lost['id']}", json={"is_won": True})
    assert response.status_code == 422 and "is_lost" in response.json["errors"]["json"]
    assert api.patch(f"/api/v1/stages/{lost['id']}", json={"is_won": True, "is_lost": False}).status_code == 200
    assert api.patch(f"/api/v1/stages/{lost['id']}", json={"colour": "#12345"}).status_code == 422


def test_reorder_stages(api):
    pipeline = make_pipeline(api)
    ids = [s["id"] for s in pipeline["stages"]]
    url = f"/api/v1/pipelines/{pipeline['id']}/stages/order"
    wanted = [ids[2], ids[0], ids[3], ids[1]]
    response = api.put(url, json={"stage_ids": wanted})
    assert response.status_code == 200, response.json
    assert [s["id"] for s in response.json["items"]] == wanted
    assert [s["id"] for s in api.get(f"/api/v1/pipelines/{pipeline['id']}/stages").json["items"]] == wanted
    other = default_pipeline(api)["stages"][0]["id"]
    for bad in ([ids[0], ids[1], ids[2]], [ids[0], ids[0], ids[1], ids[2], ids[3]], [*ids, other], ids[:3] + [other], []):
        response = api.put(url, json={"stage_ids": bad})
        assert response.status_code == 422, bad
        assert "stage_ids" in response.json["errors"]["json"]
    assert api.put(url, json={}).status_code == 422
    assert [s["id"] for s in api.get(f"/api/v1/pipelines/{pipeline['id']}/stages").json["items"]] == wanted


def test_delete_stage_with_deals_needs_move_to(api, captured_signals):
    sales = default_pipeline(api)
    qualified, lost = sales["stages"][1], sales["stages"][5]
    extra = api.post(f"/api/v1/pipelines/{sales['id']}/stages", json={"name": "Extra"}).json
    deals = [make_deal(api, title=f"D{i}", stage_id=extra["id"]) for i in range(2)]
    response = api.delete(f"/api/v1/stages/{extra['id']}")
    assert response.status_code == 409 and "move_to" in response.json["message"]
    other_pipeline_stage = make_pipeline(api)["stages"][0]
    for target in (other_pipeline_stage["id"], extra["id"], 999999):
        assert api.delete(f"/api/v1/stages/{extra['id']}?move_to={target}").status_code == 422
    assert api.delete(f"/api/v1/stages/{extra['id']}?move_to={lost['id']}").status_code == 422  # lost needs a reason
    with captured_signals("deal_stage_changed") as sent:
        assert api.delete(f"/api/v1/stages/{extra['id']}?move_to={qualified['id']}").status_code == 204
    assert sorted(s[2]["deal"].id for s in sent) == sorted(d["id"] for d in deals)
    assert {(s[2]["from_stage_id"], s[2]["to_stage_id"]) for s in sent} == {(extra["id"], qualified["id"])}
    for deal in deals:
        moved = api.get(f"/api/v1/deals/{deal['id']}").json
        assert moved["stage_id"] == qualified["id"] and moved["probability"] == 25
        history = api.get(f"/api/v1/deals/{deal['id']}/stage-history").json["items"]
        # The deleted stage is gone from the history's names, not the entry itself.
        assert [(h["from_stage_id"], h["to_stage_id"]) for h in history] == [(None, qualified["id"])]
    assert api.get(f"/api/v1/stages/{extra['id']}").status_code == 404

    # Into a lost stage: a reason for the deals that have none is required.
    spare = api.post(f"/api/v1/pipelines/{sales['id']}/stages", json={"name": "Spare"}).json
    make_deal(api, title="Mover", stage_id=spare["id"])
    assert api.delete(f"/api/v1/stages/{spare['id']}?move_to={lost['id']}&lost_reason=Pipeline%20cleanup").status_code == 204
    gone = api.get(f"/api/v1/deals?stage_id={lost['id']}").json["items"]
    assert [(d["title"], d["lost_reason"], d["status"]) for d in gone] == [("Mover", "Pipeline cleanup", "lost")]
    assert gone[0]["closed_at"] is not None


def test_roles(as_role):
    viewer, agent, manager = as_role("viewer"), as_role("agent"), as_role("manager")
    sales = default_pipeline(viewer)
    stage = sales["stages"][0]
    assert viewer.get(f"/api/v1/pipelines/{sales['id']}").status_code == 200
    assert viewer.get(f"/api/v1/stages/{stage['id']}").status_code == 200
    for who in (viewer, agent):
        assert who.post("/api/v1/pipelines", json={"name": "x"}).status_code == 403
        assert who.patch(f"/api/v1/pipelines/{sales['id']}", json={"name": "x"}).status_code == 403
        assert who.post(f"/api/v1/pipelines/{sales['id']}/stages", json={"name": "x"}).status_code == 403
        assert who.put(f"/api/v1/pipelines/{sales['id']}/stages/order", json={"stage_ids": []}).status_code == 403
        assert who.patch(f"/api/v1/stages/{stage['id']}", json={"name": "x"}).status_code == 403
        assert who.delete(f"/api/v1/stages/{stage['id']}").status_code == 403
    created = make_pipeline(manager)
    assert manager.delete(f"/api/v1/pipelines/{created['id']}").status_code == 204


def test_no_credentials_401(api_env):
    client = api_env.client("acme")
    assert client.get("/api/v1/pipelines").status_code == 401
    assert client.get("/api/v1/stages/1").status_code == 401


def test_other_tenant_sees_nothing(api, as_role):
    pipeline = make_pipeline(api)
    stage = pipeline["stages"][0]
    other = as_role("admin", "other")
    assert [p["name"] for p in other.get("/api/v1/pipelines").json["items"]] == ["Sales"]
    assert other.get(f"/api/v1/pipelines/{pipeline['id']}").status_code == 404
    assert other.patch(f"/api/v1/pipelines/{pipeline['id']}", json={"name": "x"}).status_code == 404
    assert other.delete(f"/api/v1/pipelines/{pipeline['id']}").status_code == 404
    assert other.get(f"/api/v1/pipelines/{pipeline['id']}/stages").status_code == 404
    assert other.post(f"/api/v1/pipelines/{pipeline['id']}/stages", json={"name": "x"}).status_code == 404
    assert other.put(f"/api/v1/pipelines/{pipeline['id']}/stages/order", json={"stage_ids": [s["id"] for s in pipeline["stages"]]}).status_code == 404
    assert other.get(f"/api/v1/stages/{stage['id']}").status_code == 404
    assert other.patch(f"/api/v1/stages/{stage['id']}", json={"name": "x"}).status_code == 404
    assert other.delete(f"/api/v1/stages/{stage['id']}").status_code == 404
    # Nor can it move its own stage's deals into my stage.
    theirs = default_pipeline(other)["stages"][0]
    assert other.delete(f"/api/v1/stages/{theirs['id']}?move_to={stage['id']}").status_code == 422
    assert api.get(f"/api/v1/pipelines/{pipeline['id']}").json["name"] == "Partners"
