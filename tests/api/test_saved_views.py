"""/api/v1/views: saved views of a list, personal or shared, checked like the list's query."""

from __future__ import annotations

import pytest

from crmcore import auth, db
from tests.api.conftest import Api


class PersonApi(Api):
    """An API client whose token is bound to a new user of ``role`` (a person's token)."""

    def __init__(self, env, slug: str, role: str):
        self.client = env.client(slug)
        self.slug, self.role = slug, role
        with env.app.app_context(), db.database.connection_context():
            tenant = env.tenant(slug)
            self.user = auth.create_user(tenant, f"{role}-{id(self)}@{slug}.test", "secret-pw-123", role=role)
            self.token = auth.create_token(tenant, role, name="person", user=self.user)[1]


@pytest.fixture
def person(api_env):
    def make(role: str = "agent", slug: str = "acme") -> PersonApi:
        return PersonApi(api_env, slug, role)

    return make


def test_a_personal_view_is_saved_and_seen_only_by_its_owner(person):
    ann, bob = person("agent"), person("agent")
    answer = ann.post("/api/v1/views", json={"entity": "lead", "name": " Hot  new ", "query": {"status": ["new", "contacted"], "sort": "-created_at", "q": ""}})
    assert answer.status_code == 201, answer.get_json()
    view = answer.get_json()
    assert view["name"] == "Hot new"
    assert view["query"] == {"status": ["new", "contacted"], "sort": ["-created_at"]}
    assert view["shared"] is False and view["mine"] is True and view["owner_id"] == ann.user.id
    assert answer.headers["ETag"] == f'"{view["id"]}-1"'

    assert [v["name"] for v in ann.get("/api/v1/views?entity=lead").get_json()["items"]] == ["Hot new"]
    assert ann.get("/api/v1/views?entity=deal").get_json()["items"] == []
    assert bob.get("/api/v1/views").get_json()["items"] == []
    assert bob.get(f"/api/v1/views/{view['id']}").status_code == 404
    assert bob.patch(f"/api/v1/views/{view['id']}", json={"name": "mine now"}).status_code == 404
    assert bob.delete(f"/api/v1/views/{view['id']}").status_code == 404


def test_a_shared_view_is_seen_by_everyone_changed_by_its_owner_and_managers(person):
    ann, bob, boss = person("agent"), person("agent"), person("manager")
    view = ann.post("/api/v1/views", json={"entity": "deal", "name": "Closing soon", "shared": True, "query": {"sort": "-value"}}).get_json()
    mine = ann.post("/api/v1/views", json={"entity": "deal", "name": "A mine", "query": {}}).get_json()
    listed = ann.get("/api/v1/views?entity=deal").get_json()["items"]
    assert [v["name"] for v in listed] == ["A mine", "Closing soon"]  # own first
    seen = bob.get("/api/v1/views").get_json()["items"]
    assert [(v["name"], v["mine"], v["owner_name"]) for v in seen] == [("Closing soon", False, ann.user.name)]

    assert bob.patch(f"/api/v1/views/{view['id']}", json={"name": "Mine"}).status_code == 403
    assert bob.delete(f"/api/v1/views/{view['id']}").status_code == 403
    renamed = boss.patch(f"/api/v1/views/{view['id']}", json={"name": "Closing this month"}, headers={"If-Match": f'"{view["id"]}-1"'})
    assert renamed.status_code == 200 and renamed.get_json()["version"] == 2
    stale = ann.patch(f"/api/v1/views/{view['id']}", json={"query": {"sort": "-value"}}, headers={"If-Match": f'"{view["id"]}-1"'})
    assert stale.status_code == 412
    assert boss.delete(f"/api/v1/views/{mine['id']}").status_code == 404  # personal: not even seen
    assert boss.delete(f"/api/v1/views/{view['id']}").status_code == 204
    assert ann.get(f"/api/v1/views/{view['id']}").status_code == 404


def test_a_viewer_saves_for_themselves_but_may_not_share(person):
    viewer = person("viewer")
    assert viewer.post("/api/v1/views", json={"entity": "lead", "name": "Mine", "query": {"status": "new"}}).status_code == 201
    refused = viewer.post("/api/v1/views", json={"entity": "lead", "name": "Ours", "shared": True})
    assert refused.status_code == 403 and "records:write" in refused.get_json()["message"]


def test_a_name_is_unique_per_person_and_list(person):
    ann, bob = person(), person()
    first = ann.post("/api/v1/views", json={"entity": "lead", "name": "Open"}).get_json()
    again = ann.post("/api/v1/views", json={"entity": "lead", "name": "Open"})
    assert again.status_code == 409
    assert again.get_json()["existing"] == {"id": first["id"], "url": f"/api/v1/views/{first['id']}"}
    assert ann.post("/api/v1/views", json={"entity": "contact", "name": "Open"}).status_code == 201
    assert bob.post("/api/v1/views", json={"entity": "lead", "name": "Open"}).status_code == 201
    other = ann.post("/api/v1/views", json={"entity": "lead", "name": "Other"}).get_json()
    assert ann.patch(f"/api/v1/views/{other['id']}", json={"name": "Open"}).status_code == 409


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ({"status": ["new", "sleeping"]}, "query.status"),
        ({"sort": "shoe_size"}, "query.sort"),
        ({"owner_id": "someone"}, "query.owner_id"),
        ({"colour": "red"}, "query.colour"),
        ({"cursor": "abc"}, "query.cursor"),
        ({"custom.nothing": "x"}, "query.custom.nothing"),
        ({"status": {"a": 1}}, "query.status"),
        ({"q": "x" * 201}, "query.q"),
    ],
)
def test_filters_the_list_would_not_understand_are_refused_with_the_key(person, query, key):
    answer = person().post("/api/v1/views", json={"entity": "lead", "name": "Bad", "query": query})
    assert answer.status_code == 422, answer.get_json()
    assert key in answer.get_json()["errors"]["json"]


def test_bad_bodies_get_field_messages(person):
    ann = person()
    for body, field in [({"entity": "task", "name": "x"}, "entity"), ({"entity": "lead", "name": "   "}, "name"), ({"entity": "lead"}, "name"), ({"entity": "lead", "name": "x", "query": [1]}, "query")]:
        answer = ann.post("/api/v1/views", json=body)
        assert answer.status_code == 422, (body, answer.get_json())
        assert field in answer.get_json()["errors"]["json"], (body, answer.get_json())


def test_custom_field_and_page_only_filters_are_kept(api, person):
    assert api.post("/api/v1/custom-fields", json={"entity": "contact", "key": "region", "label": "Region", "kind": "text"}).status_code == 201
    answer = person().post("/api/v1/views", json={"entity": "contact", "name": "North", "query": {"custom.region": "north", "company": "Acme", "lifecycle_stage": "customer"}})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["query"] == {"custom.region": ["north"], "company": ["Acme"], "lifecycle_stage": ["customer"]}


def test_a_token_of_no_person_saves_tenant_wide_views(api, as_role, person):
    made = api.post("/api/v1/views", json={"entity": "company", "name": "Big ones", "query": {"sort": "-name"}})
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["shared"] is True and made.get_json()["owner_id"] is None
    assert [v["name"] for v in person().get("/api/v1/views").get_json()["items"]] == ["Big ones"]
    assert as_role("viewer").post("/api/v1/views", json={"entity": "company", "name": "x"}).status_code == 403
    assert person("agent").delete(f"/api/v1/views/{made.get_json()['id']}").status_code == 403


def test_another_tenants_views_do_not_exist(person):
    view = person("admin").post("/api/v1/views", json={"entity": "lead", "name": "Ours", "shared": True}).get_json()
    stranger = person("admin", slug="other")
    assert stranger.get("/api/v1/views").get_json()["items"] == []
    assert stranger.get(f"/api/v1/views/{view['id']}").status_code == 404
    assert stranger.delete(f"/api/v1/views/{view['id']}").status_code == 404
