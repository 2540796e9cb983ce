"""/api/v1/contacts end to end: CRUD, validation, duplicate emails, ETags, filters, custom
field filters, pagination, permissions, tenant isolation, signals."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from crmcore import db


@contextlib.contextmanager
def in_tenant(api_env: Any, slug: str = "acme") -> Iterator[Any]:
    """Direct model access as tenant ``slug`` (between requests, never around one)."""
    tenant = api_env.tenant(slug)
    with db.connection(), db.tenant_context(tenant):
        yield tenant


def define_custom_field(api_env: Any, entity: str, key: str, kind: str, choices: list[Any] | None = None, slug: str = "acme") -> None:
    from crmcore.entities.models import CustomField

    with in_tenant(api_env, slug):
        CustomField.create(entity=entity, key=key, label=key.title(), kind=kind, choices=choices or [])


def make(api, **data):
    body = {"first_name": "Ada", "last_name": "Lovelace", **data}
    response = api.post("/api/v1/contacts", json=body)
    assert response.status_code == 201, response.json
    return response.json


def make_company(api, **data):
    response = api.post("/api/v1/companies", json={"name": "Analytical Engines", **data})
    assert response.status_code == 201, response.json
    return response.json


def test_create_read_update_delete(api, api_env):
    define_custom_field(api_env, "contact", "tier", "choice", ["gold", "silver"])
    company = make_company(api)
    contact = make(
        api,
        email="Ada@Example.COM",
        emails=["ada@example.com", "ADA@work.example", "ada@work.example"],
        phone="+44 20 7946 0018",
        phones=["+1 202 555 0143"],
        job_title="Analyst",
        company_id=company["id"],
        timezone="Europe/London",
        language="en-GB",
        consent_email=True,
        lifecycle_stage="opportunity",
        tags=["vip", "uk"],
        custom={"tier": "gold"},
    )
    assert contact["email"] == "ada@example.com"
    assert contact["emails"] == ["ada@work.example"]  # normalised, no repeats, not the primary
    assert contact["phone"] == "+442079460018" and contact["phones"] == ["+12025550143"]
    assert contact["name"] == "Ada Lovelace" and contact["company_id"] == company["id"]
    assert contact["timezone"] == "Europe/London" and contact["language"] == "en-GB"
    assert contact["consent_email"] is True and contact["consent_sms"] is False
    assert contact["tags"] == ["uk", "vip"] and contact["custom"] == {"tier": "gold"}

    got = api.get(f"/api/v1/contacts/{contact['id']}")
    assert got.status_code == 200 and got.json["job_title"] == "Analyst"
    etag = got.headers["ETag"]

    # The primary email changes to a further one: it leaves the further list.
    changed = api.patch(f"/api/v1/contacts/{contact['id']}", json={"email": "ada@work.example", "lifecycle_stage": "customer", "tags": ["vip"], "company_id": None}, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.json
    assert changed.json["email"] == "ada@work.example" and changed.json["emails"] == []
    assert changed.json["lifecycle_stage"] == "customer" and changed.json["tags"] == ["vip"] and changed.json["company_id"] is None
    assert changed.json["custom"] == {"tier": "gold"}
    assert changed.headers["ETag"] != etag

    assert api.delete(f"/api/v1/contacts/{contact['id']}").status_code == 204
    assert api.get(f"/api/v1/contacts/{contact['id']}").status_code == 404


def test_validation_errors_are_422_with_field_messages(api, api_env):
    define_custom_field(api_env, "contact", "tier", "choice", ["gold"])
    response = api.post(
        "/api/v1/contacts",
        json={"email": "not-an-email", "emails": ["fine@example.com", "bad@"], "phone": "12", "phones": ["x"], "timezone": "Mars/Olympus_Mons", "language": "english!", "lifecycle_stage": "fan", "first_name": "x" * 101},
    )
    assert response.status_code == 422
    errors = response.json["errors"]["json"]
    assert {"email", "emails", "phone", "phones", "timezone", "language", "lifecycle_stage", "first_name"} <= set(errors)
    assert "time zone" in errors["timezone"][0]

    refs = api.post("/api/v1/contacts", json={"first_name": "X", "owner_id": 999, "company_id": 999, "custom": {"nope": 1, "tier": "bronze"}})
    assert refs.status_code == 422
    errors = refs.json["errors"]["json"]
    assert set(errors) == {"owner_id", "company_id", "custom"}
    assert set(errors["custom"]) == {"nope", "tier"}

    nameless = api.post("/api/v1/contacts", json={"job_title": "Somebody"})
    assert nameless.status_code == 422 and "last_name" in nameless.json["errors"]["json"]
    contact = make(api, email=None)
    emptied = api.patch(f"/api/v1/contacts/{contact['id']}", json={"first_name": "", "last_name": ""})
    assert emptied.status_code == 422
    assert api.patch(f"/api/v1/contacts/{contact['id']}", json={"timezone": "Nowhere/Land"}).status_code == 422
    assert api.get(f"/api/v1/contacts/{contact['id']}").json["first_name"] == "Ada"


def test_duplicate_email_is_409_pointing_at_existing(api):
    first = make(api, email="dup@example.com", emails=["second@example.com"])
    for body in ({"email": "DUP@example.com"}, {"email": "second@example.com"}, {"email": "new@example.com", "emails": ["dup@example.com"]}):
        response = api.post("/api/v1/contacts", json={"first_name": "Other", **body})
        assert response.status_code == 409, body
        assert response.json["existing"]["id"] == first["id"]
        assert response.json["existing"]["url"] == f"/api/v1/contacts/{first['id']}"
    other = make(api, first_name="Someone", email="someone@example.com")
    clash = api.patch(f"/api/v1/contacts/{other['id']}", json={"emails": ["second@example.com"]})
    assert clash.status_code == 409 and clash.json["existing"]["id"] == first["id"]
    assert api.patch(f"/api/v1/contacts/{other['id']}", json={"email": "dup@example.com"}).status_code == 409
    assert api.get(f"/api/v1/contacts/{other['id']}").json["email"] == "someone@example.com"
    # A contact may keep its own addresses.
    assert api.patch(f"/api/v1/contacts/{first['id']}", json={"email": "dup@example.com", "emails": ["second@example.com"], "job_title": "Boss"}).status_code == 200


def test_stale_if_match_is_412_and_changes_nothing(api):
    contact = make(api)
    etag = api.get(f"/api/v1/contacts/{contact['id']}").headers["ETag"]
    assert api.patch(f"/api/v1/contacts/{contact['id']}", json={"first_name": "First"}, headers={"If-Match": etag}).status_code == 200
    stale = api.patch(f"/api/v1/contacts/{contact['id']}", json={"first_name": "Second"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert api.get(f"/api/v1/contacts/{contact['id']}").json["first_name"] == "First"
    assert api.delete(f"/api/v1/contacts/{contact['id']}", headers={"If-Match": etag}).status_code == 412


def names(response) -> list[str]:
    assert response.status_code == 200, response.json
    return [x["name"] for x in response.json["items"]]


def test_filters_search_sort_and_keyset_pagination(api, api_env):
    define_custom_field(api_env, "contact", "tier", "choice", ["gold", "silver"])
    define_custom_field(api_env, "contact", "seats", "number")
    define_custom_field(api_env, "contact", "partner", "boolean")
    company = make_company(api)
    for i in range(23):
        make(
            api,
            first_name=f"Person{i:02d}",
            last_name=f"Z{22 - i:02d}",
            email=f"p{i}@example.com",
            emails=[f"other{i}@mail.example"] if i == 7 else [],
            phone=f"+44 20 7946 {1000 + i}",
            company_id=company["id"] if i % 4 == 0 else None,
            lifecycle_stage="customer" if i % 5 == 0 else "lead",
            tags=["hot"] if i < 3 else [],
            custom={"tier": "gold" if i % 2 else "silver", "seats": i, "partner": i == 9},
            consent_sms=i == 4,
        )
    assert len(names(api.get("/api/v1/contacts?lifecycle_stage=customer&limit=100"))) == 5
    assert len(names(api.get("/api/v1/contacts?lifecycle_stage=customer&lifecycle_stage=lead&limit=100"))) == 23
    assert len(names(api.get(f"/api/v1/contacts?company_id={company['id']}&limit=100"))) == 6
    assert len(names(api.get("/api/v1/contacts?company_id=0&limit=100"))) == 17
    assert names(api.get("/api/v1/contacts?tag=hot&sort=first_name")) == ["Person00 Z22", "Person01 Z21", "Person02 Z20"]
    assert names(api.get("/api/v1/contacts?consent_sms=true")) == ["Person04 Z18"]
    assert len(names(api.get("/api/v1/contacts?owner_id=0&limit=100"))) == 23
    # Free text: first name, full name, email, further email, phone.
    assert names(api.get("/api/v1/contacts?q=person1&sort=first_name&limit=3")) == ["Person10 Z12", "Person11 Z11", "Person12 Z10"]
    assert names(api.get("/api/v1/contacts?q=son05 z17")) == ["Person05 Z17"]
    assert names(api.get("/api/v1/contacts?q=P8@EXAMPLE")) == ["Person08 Z14"]
    assert names(api.get("/api/v1/contacts?q=other7@mail")) == ["Person07 Z15"]
    assert names(api.get("/api/v1/contacts?q=79461013")) == ["Person13 Z09"]
    # Custom fields: choice, number, boolean.
    assert len(names(api.get("/api/v1/contacts?custom.tier=gold&limit=100"))) == 11
    assert names(api.get("/api/v1/contacts?custom.seats=12")) == ["Person12 Z10"]
    assert names(api.get("/api/v1/contacts?custom.partner=true")) == ["Person09 Z13"]
    assert names(api.get("/api/v1/contacts?custom.tier=gold&custom.seats=3")) == ["Person03 Z19"]
    bad = api.get("/api/v1/contacts?custom.nope=1&custom.seats=many")
    assert bad.status_code == 422 and set(bad.json["errors"]["query"]) == {"custom.nope", "custom.seats"}
    # Date ranges.
    assert names(api.get("/api/v1/contacts?created_after=2999-01-01T00:00:00Z")) == []
    assert len(names(api.get("/api/v1/contacts?created_before=2999-01-01T00:00:00Z&updated_after=2000-01-01T00:00:00Z&limit=100"))) == 23

    for sort, expected in (("last_name", [f"Person{22 - i:02d} Z{i:02d}" for i in range(23)]), ("-first_name", [f"Person{i:02d} Z{22 - i:02d}" for i in reversed(range(23))])):
        seen, cursor = [], None
        while True:
            page = api.get(f"/api/v1/contacts?limit=5&sort={sort}" + (f"&cursor={cursor}" if cursor else "")).json
            seen += [x["name"] for x in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == expected
    created = [x["id"] for x in api.get("/api/v1/contacts?limit=100&sort=created_at").json["items"]]
    assert created == sorted(created)
    assert api.get("/api/v1/contacts?cursor=garbage").status_code == 422
    assert api.get("/api/v1/contacts?sort=email").status_code == 422  # nullable: not sortable
    assert api.get("/api/v1/contacts?lifecycle_stage=fan").status_code == 422
    assert api.get("/api/v1/contacts?limit=0").status_code == 422


def test_roles(as_role):
    viewer, agent, manager = as_role("viewer"), as_role("agent"), as_role("manager")
    assert viewer.get("/api/v1/contacts").status_code == 200
    assert viewer.post("/api/v1/contacts", json={"first_name": "x"}).status_code == 403
    contact = make(agent, first_name="Agent's")
    assert viewer.get(f"/api/v1/contacts/{contact['id']}").status_code == 200
    assert viewer.patch(f"/api/v1/contacts/{contact['id']}", json={"first_name": "y"}).status_code == 403
    assert agent.patch(f"/api/v1/contacts/{contact['id']}", json={"first_name": "y"}).status_code == 200
    assert agent.delete(f"/api/v1/contacts/{contact['id']}").status_code == 403
    assert manager.delete(f"/api/v1/contacts/{contact['id']}").status_code == 204


def test_no_credentials_401(api_env, api):
    contact = make(api)
    client = api_env.client("acme")
    assert client.get("/api/v1/contacts").status_code == 401
    assert client.get(f"/api/v1/contacts/{contact['id']}").status_code == 401
    assert client.post("/api/v1/contacts", json={"first_name": "x"}).status_code == 401
    assert client.delete(f"/api/v1/contacts/{contact['id']}").status_code == 401


def test_other_tenant_sees_nothing(api, as_role):
    company = make_company(api)
    contact = make(api, email="mine@example.com", company_id=company["id"])
    other = as_role("admin", "other")
    assert other.get(f"/api/v1/contacts/{contact['id']}").status_code == 404
    assert other.patch(f"/api/v1/contacts/{contact['id']}", json={"first_name": "x"}).status_code == 404
    assert other.delete(f"/api/v1/contacts/{contact['id']}").status_code == 404
    assert other.get("/api/v1/contacts").json["items"] == []
    assert other.get(f"/api/v1/contacts?company_id={company['id']}").json["items"] == []
    # Another tenant's company cannot be linked, and the same email is free there.
    refused = other.post("/api/v1/contacts", json={"first_name": "Theirs", "company_id": company["id"]})
    assert refused.status_code == 422 and "company_id" in refused.json["errors"]["json"]
    assert other.post("/api/v1/contacts", json={"first_name": "Theirs", "email": "mine@example.com"}).status_code == 201
    assert api.get(f"/api/v1/contacts/{contact['id']}").json["first_name"] == "Ada"


def test_signals_after_commit(api, captured_signals):
    with captured_signals("contact_created", "contact_updated", "contact_deleted") as sent:
        contact = make(api)
        api.patch(f"/api/v1/contacts/{contact['id']}", json={"lifecycle_stage": "customer"})
        api.post("/api/v1/contacts", json={"first_name": "Dup", "email": None, "timezone": "bad"})  # 422: nothing sent
        api.delete(f"/api/v1/contacts/{contact['id']}")
    assert [s[0] for s in sent] == ["contact_created", "contact_updated", "contact_deleted"]
    assert sent[1][2]["changes"] == {"lifecycle_stage": ["lead", "customer"]}
    assert sent[2][2]["record_id"] == contact["id"]
