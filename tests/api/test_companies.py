"""/api/v1/companies end to end: CRUD, validation, ETags, filters, pagination, a company's
contacts, permissions, tenant isolation."""

from __future__ import annotations

from tests.api.test_contacts import define_custom_field
from tests.api.test_contacts import make as make_contact


def make(api, **data):
    response = api.post("/api/v1/companies", json={"name": "Analytical Engines", **data})
    assert response.status_code == 201, response.json
    return response.json


def names(response) -> list[str]:
    assert response.status_code == 200, response.json
    return [x["name"] for x in response.json["items"]]


def test_create_read_update_delete(api, api_env):
    define_custom_field(api_env, "company", "segment", "text")
    company = make(
        api,
        domain="https://www.Engines.CO.uk/about?x=1",
        industry="Manufacturing",
        size="51-200",
        annual_revenue="1250000.5",
        address="12 Babbage Road\nLondon",
        website="https://engines.co.uk",
        tags=["key", "uk"],
        custom={"segment": "enterprise"},
    )
    assert company["domain"] == "engines.co.uk"
    assert company["annual_revenue"] == "1250000.50"
    assert company["tags"] == ["key", "uk"] and company["custom"] == {"segment": "enterprise"}
    assert make(api, name="Bücher", domain="bücher.example")["domain"] == "xn--bcher-kva.example"

    got = api.get(f"/api/v1/companies/{company['id']}")
    assert got.status_code == 200 and got.json["address"] == "12 Babbage Road\nLondon"
    etag = got.headers["ETag"]
    changed = api.patch(f"/api/v1/companies/{company['id']}", json={"size": "201-500", "tags": ["key"], "annual_revenue": None}, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.json
    assert changed.json["size"] == "201-500" and changed.json["tags"] == ["key"] and changed.json["annual_revenue"] is None
    assert changed.json["custom"] == {"segment": "enterprise"} and changed.headers["ETag"] != etag

    # Deleting a company keeps its contacts, without the company.
    contact = make_contact(api, company_id=company["id"])
    assert api.delete(f"/api/v1/companies/{company['id']}").status_code == 204
    assert api.get(f"/api/v1/companies/{company['id']}").status_code == 404
    assert api.get(f"/api/v1/contacts/{contact['id']}").json["company_id"] is None


def test_validation_errors_are_422_with_field_messages(api, api_env):
    define_custom_field(api_env, "company", "segment", "choice", ["smb", "enterprise"])
    response = api.post("/api/v1/companies", json={"name": "", "domain": "not a domain", "website": "ftp://x.example", "size": "huge", "annual_revenue": "-1", "owner_id": "me"})
    assert response.status_code == 422
    assert {"name", "domain", "website", "size", "annual_revenue", "owner_id"} <= set(response.json["errors"]["json"])
    too_big = api.post("/api/v1/companies", json={"name": "Big", "annual_revenue": "100000000000000"})
    assert too_big.status_code == 422 and "annual_revenue" in too_big.json["errors"]["json"]
    refs = api.post("/api/v1/companies", json={"name": "X", "owner_id": 999, "custom": {"nope": "1", "segment": "giant"}})
    assert refs.status_code == 422
    assert set(refs.json["errors"]["json"]) == {"owner_id", "custom"}
    assert set(refs.json["errors"]["json"]["custom"]) == {"nope", "segment"}
    company = make(api)
    assert api.patch(f"/api/v1/companies/{company['id']}", json={"name": None}).status_code == 422
    assert api.patch(f"/api/v1/companies/{company['id']}", json={"custom": {"segment": "giant"}}).status_code == 422


def test_stale_if_match_is_412_and_changes_nothing(api):
    company = make(api)
    etag = api.get(f"/api/v1/companies/{company['id']}").headers["ETag"]
    assert api.patch(f"/api/v1/companies/{company['id']}", json={"name": "First"}, headers={"If-Match": etag}).status_code == 200
    assert api.patch(f"/api/v1/companies/{company['id']}", json={"name": "Second"}, headers={"If-Match": etag}).status_code == 412
    assert api.get(f"/api/v1/companies/{company['id']}").json["name"] == "First"
    assert api.delete(f"/api/v1/companies/{company['id']}", headers={"If-Match": etag}).status_code == 412


def test_filters_search_sort_and_keyset_pagination(api, api_env):
    define_custom_field(api_env, "company", "employees", "number")
    for i in range(22):
        make(
            api,
            name=f"Company {i:02d}",
            domain=f"c{i}.example",
            industry="Retail" if i % 3 == 0 else "Software",
            size="1-10" if i % 2 else "11-50",
            website=f"https://www.c{i}.example",
            tags=["target"] if i in (4, 5) else [],
            custom={"employees": i * 10},
        )
    assert len(names(api.get("/api/v1/companies?industry=Retail&limit=100"))) == 8
    assert len(names(api.get("/api/v1/companies?industry=Retail&industry=Software&limit=100"))) == 22
    assert len(names(api.get("/api/v1/companies?size=1-10&industry=Retail&limit=100"))) == 4
    assert names(api.get("/api/v1/companies?domain=HTTPS://C7.example/")) == ["Company 07"]
    assert names(api.get("/api/v1/companies?tag=target&sort=name")) == ["Company 04", "Company 05"]
    assert names(api.get("/api/v1/companies?custom.employees=130")) == ["Company 13"]
    assert names(api.get("/api/v1/companies?q=company 1&sort=-name&limit=2")) == ["Company 19", "Company 18"]
    assert names(api.get("/api/v1/companies?q=c21.exa")) == ["Company 21"]
    assert len(names(api.get("/api/v1/companies?owner_id=0&created_after=2000-01-01T00:00:00Z&limit=100"))) == 22
    assert names(api.get("/api/v1/companies?updated_before=2000-01-01T00:00:00Z")) == []
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/companies?limit=6&sort=name" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [x["name"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"Company {i:02d}" for i in range(22)]
    assert api.get("/api/v1/companies?size=huge").status_code == 422
    assert api.get("/api/v1/companies?sort=domain").status_code == 422
    assert api.get("/api/v1/companies?custom.nope=1").status_code == 422


def test_company_contacts(api, as_role):
    engines, other_company = make(api), make(api, name="Elsewhere")
    for i in range(7):
        make_contact(api, first_name=f"Staff{i}", email=f"s{i}@engines.example", company_id=engines["id"], lifecycle_stage="customer" if i < 2 else "lead")
    make_contact(api, first_name="Outsider", company_id=other_company["id"])
    seen, cursor = [], None
    while True:
        response = api.get(f"/api/v1/companies/{engines['id']}/contacts?limit=3&sort=first_name" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200
        seen += [x["first_name"] for x in response.json["items"]]
        cursor = response.json["next_cursor"]
        if not cursor:
            break
    assert seen == [f"Staff{i}" for i in range(7)]
    # The path wins over a company_id query parameter; other filters apply.
    assert [x["first_name"] for x in api.get(f"/api/v1/companies/{engines['id']}/contacts?company_id={other_company['id']}&lifecycle_stage=customer&sort=first_name").json["items"]] == ["Staff0", "Staff1"]
    assert api.get("/api/v1/companies/99999/contacts").status_code == 404
    assert as_role("admin", "other").get(f"/api/v1/companies/{engines['id']}/contacts").status_code == 404


def test_roles(as_role):
    viewer, agent, manager = as_role("viewer"), as_role("agent"), as_role("manager")
    assert viewer.get("/api/v1/companies").status_code == 200
    assert viewer.post("/api/v1/companies", json={"name": "x"}).status_code == 403
    company = make(agent)
    assert viewer.get(f"/api/v1/companies/{company['id']}/contacts").status_code == 200
    assert viewer.patch(f"/api/v1/companies/{company['id']}", json={"name": "y"}).status_code == 403
    assert agent.patch(f"/api/v1/companies/{company['id']}", json={"name": "y"}).status_code == 200
    assert agent.delete(f"/api/v1/companies/{company['id']}").status_code == 403
    assert manager.delete(f"/api/v1/companies/{company['id']}").status_code == 204


def test_no_credentials_401(api_env, api):
    company = make(api)
    client = api_env.client("acme")
    assert client.get("/api/v1/companies").status_code == 401
    assert client.get(f"/api/v1/companies/{company['id']}").status_code == 401
    assert client.get(f"/api/v1/companies/{company['id']}/contacts").status_code == 401
    assert client.patch(f"/api/v1/companies/{company['id']}", json={"name": "x"}).status_code == 401


def test_other_tenant_sees_nothing(api, as_role):
    company = make(api, domain="mine.example")
    other = as_role("admin", "other")
    assert other.get(f"/api/v1/companies/{company['id']}").status_code == 404
    assert other.patch(f"/api/v1/companies/{company['id']}", json={"name": "x"}).status_code == 404
    assert other.delete(f"/api/v1/companies/{company['id']}").status_code == 404
    assert other.get("/api/v1/companies").json["items"] == []
    assert other.get("/api/v1/companies?domain=mine.example").json["items"] == []
    assert api.get(f"/api/v1/companies/{company['id']}").json["name"] == "Analytical Engines"
