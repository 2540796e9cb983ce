"""/api/v1/tags (CRUD, bulk apply/remove) and /api/v1/custom-fields (CRUD, guards), and
custom values end to end through /api/v1/leads (validation, list filters)."""

from __future__ import annotations

import pytest

from tests.api.test_activities import in_tenant, lead


def make_tag(api, **data):
    response = api.post("/api/v1/tags", json={"name": "vip", **data})
    assert response.status_code == 201, response.json
    return response.json


def make_field(api, **data):
    body = {"entity": "lead", "key": "seats", "label": "Seats", "kind": "number", **data}
    response = api.post("/api/v1/custom-fields", json=body)
    assert response.status_code == 201, response.json
    return response.json


# --------------------------------------------------------------------------- tags


def test_tag_crud_duplicates_and_etag(api):
    tag = make_tag(api, name="  vip ", colour="#FFAA00")
    assert tag["name"] == "vip" and tag["colour"] == "#ffaa00" and tag["usage"] == {}
    assert make_tag(api, name="cold")["colour"] == "#5b6b8c"
    dup = api.post("/api/v1/tags", json={"name": "vip"})
    assert dup.status_code == 409 and dup.json["existing"]["id"] == tag["id"]
    bad = api.post("/api/v1/tags", json={"name": "", "colour": "red"})
    assert bad.status_code == 422 and set(bad.json["errors"]["json"]) == {"name", "colour"}
    assert api.post("/api/v1/tags", json={"name": "   "}).status_code == 422

    etag = api.get(f"/api/v1/tags/{tag['id']}").headers["ETag"]
    assert api.patch(f"/api/v1/tags/{tag['id']}", json={"name": "cold"}).status_code == 409
    renamed = api.patch(f"/api/v1/tags/{tag['id']}", json={"name": "gold"}, headers={"If-Match": etag})
    assert renamed.status_code == 200 and renamed.json["name"] == "gold"
    assert api.patch(f"/api/v1/tags/{tag['id']}", json={"colour": "#000000"}, headers={"If-Match": etag}).status_code == 412
    assert [t["name"] for t in api.get("/api/v1/tags").json["items"]] == ["cold", "gold"]
    assert [t["name"] for t in api.get("/api/v1/tags?q=OL&sort=-name").json["items"]] == ["gold", "cold"]


def test_records_keep_a_renamed_tag_and_lose_a_deleted_one(api):
    first = lead(api, tags=["vip", "uk"])
    second = lead(api, name="B", email="b@example.com", tags=["vip"])
    vip = next(t for t in api.get("/api/v1/tags").json["items"] if t["name"] == "vip")
    assert vip["usage"] == {"lead": 2}
    api.patch(f"/api/v1/tags/{vip['id']}", json={"name": "VIP"})
    assert api.get(f"/api/v1/leads/{first['id']}").json["tags"] == ["VIP", "uk"]
    etag = api.get(f"/api/v1/leads/{second['id']}").headers["ETag"]
    assert api.delete(f"/api/v1/tags/{vip['id']}").status_code == 204
    assert api.get(f"/api/v1/tags/{vip['id']}").status_code == 404
    assert api.get(f"/api/v1/leads/{first['id']}").json["tags"] == ["uk"]
    after = api.get(f"/api/v1/leads/{second['id']}")
    assert after.json["tags"] == [] and after.headers["ETag"] != etag
    trail = api.get(f"/api/v1/leads/{second['id']}/audit").json["items"]
    assert trail[0]["changes"] == {"tags": [["VIP"], []]}
    assert api.get("/api/v1/leads?tag=VIP").json["items"] == []


def test_bulk_apply_and_remove(api, as_role, captured_signals):
    leads = [lead(api, name=f"L{i}", email=f"l{i}@example.com") for i in range(4)]
    ids = [x["id"] for x in leads]
    tag = make_tag(api, name="campaign")
    lead(api, name="Pre-tagged", email="pre@example.com", tags=["campaign"])
    with captured_signals("entity_updated") as sent:
        applied = api.post(f"/api/v1/tags/{tag['id']}/apply", json={"entity": "lead", "ids": ids[:3]})
    assert applied.status_code == 200, applied.json
    assert applied.json == {"tag_id": tag["id"], "entity": "lead", "changed": ids[:3]}
    assert sorted(s[2]["record"].id for s in sent) == ids[:3]
    assert sent[0][2]["changes"] == {"tags": [[], ["campaign"]]}
    again = api.post(f"/api/v1/tags/{tag['id']}/apply", json={"entity": "lead", "ids": ids})
    assert again.json["changed"] == [ids[3]]
    assert len(api.get("/api/v1/leads?tag=campaign").json["items"]) == 5
    assert api.get(f"/api/v1/tags/{tag['id']}").json["usage"] == {"lead": 5}
    trail = api.get(f"/api/v1/leads/{ids[0]}/audit").json["items"]
    assert trail[0]["action"] == "update" and trail[0]["changes"] == {"tags": [[], ["campaign"]]}
    assert trail[0]["actor"]["type"] == "token"

    removed = api.post(f"/api/v1/tags/{tag['id']}/remove", json={"entity": "lead", "ids": ids[:2]})
    assert removed.json["changed"] == ids[:2]
    assert len(api.get("/api/v1/leads?tag=campaign").json["items"]) == 3


def test_bulk_apply_refuses_ids_it_cannot_see(api, as_role, api_env):
    mine = lead(api)
    theirs = lead(as_role("admin", "other"), name="Theirs")
    tag = make_tag(api)
    response = api.post(f"/api/v1/tags/{tag['id']}/apply", json={"entity": "lead", "ids": [mine["id"], theirs["id"], 99999]})
    assert response.status_code == 422
    assert set(response.json["errors"]["json"]["ids"]) == {str(theirs["id"]), "99999"}
    assert api.get(f"/api/v1/leads/{mine['id']}").json["tags"] == []  # nothing changed
    assert api.post(f"/api/v1/tags/{tag['id']}/apply", json={"entity": "lead", "ids": [mine["id"]]}).json["changed"] == [mine["id"]]
    # Another entity: a lead id is not a contact id.
    from crmcore.entities import service
    from crmcore.entities.models import Contact

    with in_tenant(api_env):
        contact = service.create(Contact, {"first_name": "C", "last_name": "D"})
    assert api.post(f"/api/v1/tags/{tag['id']}/apply", json={"entity": "contact", "ids": [contact.id]}).json["changed"] == [contact.id]
    assert api.get(f"/api/v1/tags/{tag['id']}").json["usage"] == {"contact": 1, "lead": 1}
    bad = api.post(f"/api/v1/tags/{tag['id']}/apply", json={"entity": "planet", "ids": []})
    assert bad.status_code == 422 and set(bad.json["errors"]["json"]) == {"entity", "ids"}


def test_tag_roles_401_and_other_tenant(api, as_role, api_env):
    tag = make_tag(api)
    ld = lead(api)
    agent, viewer, other = as_role("agent"), as_role("viewer"), as_role("admin", "other")
    assert viewer.get("/api/v1/tags").status_code == 200
    assert viewer.post("/api/v1/tags", json={"name": "x"}).status_code == 403
    assert agent.post("/api/v1/tags", json={"name": "agents"}).status_code == 201
    assert agent.post(f"/api/v1/tags/{tag['id']}/apply", json={"entity": "lead", "ids": [ld["id"]]}).status_code == 403
    assert agent.delete(f"/api/v1/tags/{tag['id']}").status_code == 403
    assert as_role("manager").post(f"/api/v1/tags/{tag['id']}/apply", json={"entity": "lead", "ids": [ld["id"]]}).status_code == 200
    assert api_env.client("acme").get("/api/v1/tags").status_code == 401
    for method in ("get", "patch", "delete"):
        assert getattr(other, method)(f"/api/v1/tags/{tag['id']}").status_code == 404
    for action in ("apply", "remove"):
        assert other.post(f"/api/v1/tags/{tag['id']}/{action}", json={"entity": "lead", "ids": [1]}).status_code == 404
    assert other.get("/api/v1/tags").json["items"] == []
    assert other.post("/api/v1/tags", json={"name": "vip"}).status_code == 201  # names are per tenant


# --------------------------------------------------------------------------- custom fields


def test_custom_field_crud_and_validation(api):
    field = make_field(api)
    assert field["required"] is False and field["choices"] == []
    choice = make_field(api, key="tier", label="Tier", kind="choice", choices=["gold", "silver", "gold"])
    assert choice["choices"] == ["gold", "silver"]
    dup = api.post("/api/v1/custom-fields", json={"entity": "lead", "key": "seats", "label": "Again", "kind": "text"})
    assert dup.status_code == 409 and dup.json["existing"]["id"] == field["id"]
    make_field(api, entity="deal")  # the same key on another entity is fine

    bad = api.post("/api/v1/custom-fields", json={"entity": "planet", "key": "9lives", "label": "", "kind": "colour"})
    assert bad.status_code == 422 and set(bad.json["errors"]["json"]) == {"entity", "key", "label", "kind"}
    for body, key in (({"kind": "choice"}, "choices"), ({"kind": "choice", "choices": []}, "choices"), ({"kind": "text", "choices": ["a"]}, "choices"), ({"key": "Bad-Key"}, "key")):
        response = api.post("/api/v1/custom-fields", json={"entity": "contact", "key": "k", "label": "K", "kind": "text", **body})
        assert response.status_code == 422 and key in response.json["errors"]["json"], (body, response.json)

    etag = api.get(f"/api/v1/custom-fields/{field['id']}").headers["ETag"]
    changed = api.patch(f"/api/v1/custom-fields/{field['id']}", json={"label": "Licences", "required": True}, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.json["label"] == "Licences" and changed.json["required"] is True
    assert api.patch(f"/api/v1/custom-fields/{field['id']}", json={"label": "x"}, headers={"If-Match": etag}).status_code == 412
    fixed = api.patch(f"/api/v1/custom-fields/{field['id']}", json={"key": "other", "entity": "deal"})
    assert fixed.status_code == 422 and set(fixed.json["errors"]["json"]) == {"key", "entity"}
    assert api.patch(f"/api/v1/custom-fields/{choice['id']}", json={"choices": []}).status_code == 422
    assert [f["key"] for f in api.get("/api/v1/custom-fields?entity=lead").json["items"]] == ["seats", "tier"]
    assert len(api.get("/api/v1/custom-fields").json["items"]) == 3
    assert api.delete(f"/api/v1/custom-fields/{choice['id']}").status_code == 204
    assert api.get(f"/api/v1/custom-fields/{choice['id']}").status_code == 404


def test_kind_and_choices_cannot_strand_values(api):
    seats = make_field(api)
    tier = make_field(api, key="tier", label="Tier", kind="choice", choices=["gold", "silver", "bronze"])
    spare = make_field(api, key="spare", label="Spare", kind="text")
    assert api.patch(f"/api/v1/custom-fields/{spare['id']}", json={"kind": "number"}).status_code == 200  # no values yet
    lead(api, custom={"seats": 5, "tier": "gold"})
    assert api.patch(f"/api/v1/custom-fields/{seats['id']}", json={"kind": "text"}).status_code == 409
    assert api.patch(f"/api/v1/custom-fields/{tier['id']}", json={"choices": ["silver"]}).status_code == 409
    assert api.patch(f"/api/v1/custom-fields/{tier['id']}", json={"choices": ["gold", "platinum"]}).status_code == 200
    assert api.patch(f"/api/v1/custom-fields/{tier['id']}", json={"kind": "text", "choices": []}).status_code == 409
    # Values a deleted field left behind must fit a new field with the same key.
    assert api.delete(f"/api/v1/custom-fields/{seats['id']}").status_code == 204
    clash = api.post("/api/v1/custom-fields", json={"entity": "lead", "key": "seats", "label": "Seats", "kind": "boolean"})
    assert clash.status_code == 409
    make_field(api, kind="number", label="Seats again")


def test_custom_fields_permissions_and_other_tenant(api, as_role, api_env):
    field = make_field(api)
    manager, viewer, other = as_role("manager"), as_role("viewer"), as_role("admin", "other")
    assert viewer.get("/api/v1/custom-fields").status_code == 200
    assert viewer.get(f"/api/v1/custom-fields/{field['id']}").status_code == 200
    assert manager.post("/api/v1/custom-fields", json={"entity": "lead", "key": "x", "label": "X", "kind": "text"}).status_code == 403
    assert manager.patch(f"/api/v1/custom-fields/{field['id']}", json={"label": "x"}).status_code == 403
    assert manager.delete(f"/api/v1/custom-fields/{field['id']}").status_code == 403
    assert api_env.client("acme").get("/api/v1/custom-fields").status_code == 401
    for method in ("get", "patch", "delete"):
        assert getattr(other, method)(f"/api/v1/custom-fields/{field['id']}").status_code == 404
    assert other.get("/api/v1/custom-fields").json["items"] == []
    # The other tenant's leads know nothing of acme's field.
    response = other.post("/api/v1/leads", json={"name": "X", "custom": {"seats": 3}})
    assert response.status_code == 422 and "seats" in response.json["errors"]["json"]["custom"]


def test_custom_values_through_leads(api):
    make_field(api)
    make_field(api, key="tier", label="Tier", kind="choice", choices=["gold", "silver"], required=True)
    make_field(api, key="renewal", label="Renewal", kind="date")
    make_field(api, key="signed", label="Signed", kind="boolean")
    make_field(api, key="region", label="Region", kind="text")

    wrong = api.post("/api/v1/leads", json={"name": "X", "custom": {"seats": "many", "tier": "bronze", "renewal": "May", "signed": "perhaps", "colour": "red"}})
    assert wrong.status_code == 422
    errors = wrong.json["errors"]["json"]["custom"]
    assert set(errors) == {"seats", "tier", "renewal", "signed", "colour"}
    missing = api.post("/api/v1/leads", json={"name": "X", "custom": {"seats": 3}})
    assert missing.status_code == 422 and missing.json["errors"]["json"]["custom"] == {"tier": ["Missing data for required field."]}

    a = lead(api, name="A", email="a@example.com", custom={"seats": "12", "tier": "gold", "renewal": "2025-01-31", "signed": True, "region": "North"})
    assert a["custom"] == {"seats": 12, "tier": "gold", "renewal": "2025-01-31", "signed": True, "region": "North"}
    lead(api, name="B", email="b@example.com", custom={"seats": 2.5, "tier": "silver", "signed": False, "region": "South"})
    lead(api, name="C", email="c@example.com", custom={"seats": 12, "tier": "silver"})
    changed = api.patch(f"/api/v1/leads/{a['id']}", json={"custom": {"region": "West"}})
    assert changed.status_code == 200 and changed.json["custom"]["seats"] == 12 and changed.json["custom"]["region"] == "West"
    assert api.patch(f"/api/v1/leads/{a['id']}", json={"custom": {"tier": None}}).status_code == 422

    def names(query):
        response = api.get("/api/v1/leads?sort=name&" + query)
        assert response.status_code == 200, response.json
        return [x["name"] for x in response.json["items"]]

    assert names("custom.seats=12") == ["A", "C"]
    assert names("custom.seats=2.5") == ["B"]
    assert names("custom.tier=silver") == ["B", "C"]
    assert names("custom.signed=true") == ["A"]
    assert names("custom.signed=false") == ["B"]
    assert names("custom.renewal=2025-01-31") == ["A"]
    assert names("custom.region=West&custom.seats=12") == ["A"]
    assert names("custom.region=North") == []
    for query, key in (("custom.nope=1", "custom.nope"), ("custom.seats=lots", "custom.seats"), ("custom.tier=bronze", "custom.tier")):
        response = api.get("/api/v1/leads?" + query)
        assert response.status_code == 422 and key in response.json["errors"]["query"], query


@pytest.mark.parametrize("entity", ["contact", "company", "deal"])
def test_fields_for_other_entities(api, entity):
    field = make_field(api, entity=entity, key="ref", label="Ref", kind="text")
    assert field["entity"] == entity
