"""Input the API used to take badly (issue 21): each case answered a 500, stored a wrong
value or leaked a database message before. Every test runs on SQLite and, with
CRM_TEST_DATABASE_URL, on PostgreSQL (where int32 columns and numeric precision bite)."""

from __future__ import annotations

import base64
import json
import os
import threading

import flask
import pytest

from crmcore import db
from crmcore.entities.models import Lead

INT32_OVER = 2**31


def _cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _strict_json(text: str):
    """JSON as the standard has it: Python's json module would take NaN and Infinity."""
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _field_errors(answer, location="json"):
    assert answer.status_code == 422, (answer.status_code, answer.get_data(as_text=True)[:300])
    return answer.json["errors"][location]


# ---------------------------------------------------------------- 1. numbers past the columns


def test_integers_past_int32_columns_are_refused_with_the_fields_message(api):
    pipeline = api.get("/api/v1/pipelines").json["items"][0]
    answer = api.post(f"/api/v1/pipelines/{pipeline['id']}/stages", json={"name": "Huge", "order": INT32_OVER})
    assert "order" in _field_errors(answer)
    lead = api.post("/api/v1/leads", json={"name": "Ada"}).json
    answer = api.post("/api/v1/activities", json={"kind": "call", "lead_id": lead["id"], "duration_seconds": INT32_OVER})
    assert "duration_seconds" in _field_errors(answer)
    assert api.post("/api/v1/activities", json={"kind": "call", "lead_id": lead["id"], "duration_seconds": INT32_OVER - 1}).status_code == 201
    # any id: an int32 column on PostgreSQL
    assert "owner_id" in _field_errors(api.post("/api/v1/leads", json={"name": "Bo", "owner_id": INT32_OVER}))
    assert "lead_id" in _field_errors(api.post("/api/v1/notes", json={"body": "x", "lead_id": INT32_OVER}))


@pytest.mark.parametrize("field,url,body", [
    ("estimated_value", "/api/v1/leads", {"name": "Ada"}),
    ("value", "/api/v1/deals", {"title": "Big"}),
    ("annual_revenue", "/api/v1/companies", {"name": "Acme"}),
])
def test_amounts_past_the_columns_precision_are_refused(api, field, url, body):
    for amount in ("1e20", "10000000000000", "NaN", "-1"):
        assert field in _field_errors(api.post(url, json={**body, field: amount})), amount
    assert api.post(url, json={**body, field: "9999999999999.99"}).status_code == 201
    assert api.get(url).json["items"][0][field] == "9999999999999.99"  # exact on SQLite too


# ---------------------------------------------------------------- 2. ids that are not whole


def test_fractional_ids_are_refused_not_truncated(api, api_env):
    user_id = _admin_id(api_env)
    answer = api.post("/api/v1/leads", json={"name": "Ada", "owner_id": user_id + 0.5})
    assert _field_errors(answer)["owner_id"] == ["Not a valid integer."]
    assert api.post("/api/v1/leads", json={"name": "Ada", "owner_id": "1.5"}).status_code == 422
    assert api.get("/api/v1/leads").json["items"] == []
    assert api.post("/api/v1/leads", json={"name": "Ada", "owner_id": user_id}).status_code == 201
    assert api.get("/api/v1/leads", query_string={"owner_id": str(user_id)}).json["items"][0]["owner_id"] == user_id
    assert api.get("/api/v1/leads", query_string={"owner_id": "1.5"}).status_code == 422


def _admin_id(env) -> int:
    from crmcore import auth

    with env.app.app_context(), db.database.connection_context():
        return auth.create_user(env.tenant("acme"), "owner@example.com", "pw-123456", role="agent").id


# ---------------------------------------------------------------- 3. blank domains


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_company_domain_is_no_domain(api, blank):
    answer = api.post("/api/v1/companies", json={"name": "Acme", "domain": blank})
    assert answer.status_code == 201, answer.json
    assert answer.json["domain"] is None
    patched = api.patch(f"/api/v1/companies/{answer.json['id']}", json={"domain": blank})
    assert patched.status_code == 200 and patched.json["domain"] is None
    assert "domain" in _field_errors(api.post("/api/v1/companies", json={"name": "Acme", "domain": "a" * 2001}))


# ---------------------------------------------------------------- 4. custom numbers


def test_custom_numbers_must_be_finite_and_filters_keep_working(api):
    assert api.post("/api/v1/custom-fields", json={"entity": "lead", "key": "seats", "label": "Seats", "kind": "number"}).status_code == 201
    for bad in ("NaN", "Infinity", "-Infinity", "1e400", 2**60):
        answer = api.post("/api/v1/leads", json={"name": "Ada", "custom": {"seats": bad}})
        assert "seats" in _field_errors(answer)["custom"], bad
    assert api.post("/api/v1/leads", json={"name": "Ada", "custom": {"seats": 12}}).status_code == 201
    assert [lead["name"] for lead in api.get("/api/v1/leads", query_string={"custom.seats": "12"}).json["items"]] == ["Ada"]
    for bad in ("NaN", "Infinity", "1e400"):
        assert "custom.seats" in _field_errors(api.get("/api/v1/leads", query_string={"custom.seats": bad}), "query")
    _strict_json(api.get("/api/v1/leads").get_data(as_text=True))


# ---------------------------------------------------------------- 5. damaged cursors


LISTS = ["/api/v1/leads", "/api/v1/contacts", "/api/v1/companies", "/api/v1/deals", "/api/v1/activities",
         "/api/v1/notes", "/api/v1/tasks", "/api/v1/tags", "/api/v1/custom-fields", "/api/v1/pipelines", "/api/v1/audit"]
DAMAGED = ["!!!", "e30", _cursor({"a": 1}), _cursor([{"$dec": "abc"}, 1]), _cursor([{"$dt": "yesterday"}, 1]),
           _cursor([{"$dt": "0001-01-01T00:00:00+05:00"}, 1]), _cursor([[1], 1]),
           _cursor(["2024-01-01T00:00:00", 2**63]), _cursor(["2024-01-01T00:00:00", True]), _cursor([1, 2, 3])]


@pytest.mark.parametrize("url", LISTS)
def test_damaged_cursors_are_422_on_every_list(api, url):
    for cursor in DAMAGED:
        answer = api.get(url, query_string={"cursor": cursor})
        assert answer.status_code == 422, (url, cursor, answer.status_code)
        assert answer.json["errors"] == {"query": {"cursor": ["Not a valid cursor."]}}


def test_a_cursor_of_another_sort_is_refused(api):
    for name in ("Ada", "Bo", "Cy"):
        api.post("/api/v1/leads", json={"name": name})
    by_name = api.get("/api/v1/leads", query_string={"sort": "name", "limit": 1}).json["next_cursor"]
    assert api.get("/api/v1/leads", query_string={"sort": "name", "cursor": by_name}).status_code == 200
    assert api.get("/api/v1/leads", query_string={"sort": "-created_at", "cursor": by_name}).status_code == 422
    by_date = api.get("/api/v1/leads", query_string={"limit": 1}).json["next_cursor"]
    assert api.get("/api/v1/leads", query_string={"sort": "name", "cursor": by_date}).status_code == 422
    assert api.get("/api/v1/leads", query_string={"sort": "id", "cursor": by_name}).status_code == 422
    assert api.get("/api/v1/leads", query_string={"cursor": _cursor(["not a date", 1])}).status_code == 422


# ---------------------------------------------------------------- 6. dates at the ends of time


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_dates_that_overflow_in_utc_are_refused(api, moment):
    assert "last_contact_at" in _field_errors(api.post("/api/v1/leads", json={"name": "Ada", "last_contact_at": moment}))
    assert "due_at" in _field_errors(api.post("/api/v1/tasks", json={"title": "Call", "due_at": moment}))
    for url, key in (("/api/v1/leads", "created_after"), ("/api/v1/activities", "occurred_before"), ("/api/v1/tasks", "due_after")):
        assert key in _field_errors(api.get(url, query_string={key: moment}), "query"), url
    assert api.get(f"/api/v1/leads/{api.post('/api/v1/leads', json={'name': 'Bo'}).json['id']}/timeline", query_string={"before": moment}).status_code == 422


def test_dates_at_the_ends_of_time_in_utc_are_kept(api):
    answer = api.post("/api/v1/leads", json={"name": "Ada", "last_contact_at": "9999-12-31T23:59:59+00:00"})
    assert answer.status_code == 201, answer.json


# ---------------------------------------------------------------- 7. sizes of free text


@pytest.mark.parametrize("url,body,field,limit", [
    ("/api/v1/leads", {"name": "Ada"}, "need", 10_000),
    ("/api/v1/companies", {"name": "Acme"}, "address", 2000),
    ("/api/v1/notes", None, "body", 20_000),
    ("/api/v1/activities", None, "content", 20_000),
])
def test_free_text_has_a_size_limit(api, url, body, field, limit):
    if body is None:
        lead = api.post("/api/v1/leads", json={"name": "Ada"}).json
        body = {"lead_id": lead["id"], **({"kind": "call"} if "activities" in url else {})}
    assert field in _field_errors(api.post(url, json={**body, field: "x" * (limit + 1)}))
    assert api.post(url, json={**body, field: "x" * limit}).status_code == 201


def test_every_text_field_of_a_request_body_has_a_maximum(api):
    """The document's request bodies: every string a client may send is bounded (a
    maxLength, an enum, a pattern-free format like date-time, or a documented cap)."""
    spec = api.get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    unbounded = []

    def walk(name, schema, path):
        if "$ref" in schema:
            ref = schema["$ref"].rsplit("/", 1)[-1]
            if ref not in seen:
                seen.add(ref)
                walk(ref, schemas[ref], ref)
            return
        for key, prop in (schema.get("properties") or {}).items():
            if prop.get("readOnly"):
                continue
            kinds = prop.get("type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if "string" in kinds and not ({"maxLength", "enum", "format", "pattern"} & set(prop)):
                unbounded.append(f"{path}.{key}")
            if "array" in kinds and isinstance(prop.get("items"), dict):
                walk(name, {"properties": {"[]": prop["items"]}}, f"{path}.{key}")
            if "$ref" in prop:
                walk(name, prop, path)

    seen: set[str] = set()
    for path, item in spec["paths"].items():
        if not path.startswith("/api/v1/") or any(p in path for p in ("/chat", "/pipeline/", "/scoring", "/webhooks")):
            continue  # the core's resources (the plugins' are their own)
        for operation in item.values():
            if not isinstance(operation, dict):
                continue  # path-level parameters
            body = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if body:
                walk(path, body["schema"], path)
    assert not unbounded, " ".join(unbounded)


# ---------------------------------------------------------------- 8. racing duplicates


def test_a_duplicate_that_slips_past_the_check_is_the_same_clean_409(api, api_env, monkeypatch):
    """The race, made deterministic: the twin row is inserted between the duplicate check
    and the insert (what a concurrent request does), so the unique index refuses it."""
    from crmcore.entities import service

    first = api.post("/api/v1/leads", json={"name": "Ada", "email": "ada@example.com"})
    sequential = api.post("/api/v1/leads", json={"name": "Ada", "email": "ada@example.com"})
    assert sequential.status_code == 409
    monkeypatch.setattr(service, "check_unique_email", lambda *a, **k: None)  # the check saw nothing yet
    raced = api.post("/api/v1/leads", json={"name": "Ada", "email": "ada@example.com"})
    assert raced.status_code == 409
    assert raced.json["message"] == sequential.json["message"]
    assert raced.json["existing"] == {"id": first.json["id"], "url": f"/api/v1/leads/{first.json['id']}"}
    assert "duplicate key" not in raced.get_data(as_text=True) and "UNIQUE" not in raced.get_data(as_text=True)
    other = api.post("/api/v1/leads", json={"name": "Bo", "email": "bo@example.com"}).json
    raced = api.patch(f"/api/v1/leads/{other['id']}", json={"email": "ada@example.com"})
    assert raced.status_code == 409 and raced.json["existing"]["id"] == first.json["id"]


def test_two_threads_creating_the_same_contact_get_one_record_and_a_clean_409(api_env):
    if not os.environ.get("CRM_TEST_DATABASE_URL", "").startswith("postgres"):
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises them)")
    from tests.api.conftest import Api

    clients = [Api(api_env, "acme", "admin") for _ in range(2)]
    barrier = threading.Barrier(2)
    answers = []

    def create(client):
        barrier.wait()
        answers.append(client.post("/api/v1/contacts", json={"first_name": "Ada", "email": "race@example.com"}))

    threads = [threading.Thread(target=create, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409], codes
    loser = next(a for a in answers if a.status_code == 409)
    winner = next(a for a in answers if a.status_code == 201)
    assert loser.json["existing"]["id"] == winner.json["id"]
    assert "tenant" not in loser.json["message"]


# ---------------------------------------------------------------- 11. demo data fits the API


def test_every_demo_record_dumps_through_its_schema_and_loads_back(crm_env):
    from crmcore.api import activities, companies, contacts, deals, leads, notes, todos
    from crmcore.builtin.demo import seed as demo
    from crmcore.entities.models import Activity, Company, Contact, Deal, Note, Task

    crm_env.write_tenant("demo", name="Demo")
    crm_env.create_app()
    tenant = crm_env.tenant("demo")
    with crm_env.app.app_context(), db.database.connection_context(), db.tenant_context(tenant):
        demo.seed(tenant)
        flask.g.tenant = tenant  # what a request sets (activity kinds are the tenant's)
        pairs = [(Lead, leads.LeadSchema), (Contact, contacts.ContactSchema), (Company, companies.CompanySchema), (Deal, deals.DealSchema),
                 (Activity, activities.ActivitySchema), (Note, notes.NoteSchema), (Task, todos.TaskSchema)]
        problems = {}
        for model, schema_class in pairs:
            schema = schema_class()
            records = list(model.select())
            assert records, model
            for record in records:
                record.tags = []
                dumped = schema.dump(record)
                loadable = {k: v for k, v in dumped.items() if k in schema.load_fields}
                errors = schema.validate(loadable, partial=True)
                if errors:
                    problems.setdefault(model.__name__, errors)
        assert not problems, problems


def test_non_finite_custom_numbers_stored_before_the_fix_are_emptied(api, api_env):
    """Migration 0008: a NaN or Infinity written before the API refused them made the
    record's JSON invalid and every filter on the field fail; the value becomes empty,
    the record's other values stay as they were."""
    from crmcore.builtin.hooks import _drop_non_finite_custom_numbers

    assert api.post("/api/v1/custom-fields", json={"entity": "lead", "key": "seats", "label": "Seats", "kind": "number"}).status_code == 201
    broken = api.post("/api/v1/leads", json={"name": "Ada", "custom": {"seats": 3}}).json
    fine = api.post("/api/v1/leads", json={"name": "Nanny Infinity", "custom": {"seats": 4}}).json
    with api_env.app.app_context(), db.database.connection_context():
        database = db.database.obj
        database.execute_sql(f"UPDATE crm_lead SET custom = {database.param} WHERE id = {database.param}", ('{"other": "kept", "seats": NaN}', broken["id"]))
        _drop_non_finite_custom_numbers(database)
        stored = dict(database.execute_sql("SELECT id, custom FROM crm_lead").fetchall())
    assert json.loads(stored[broken["id"]]) == {"other": "kept", "seats": None}
    assert json.loads(stored[fine["id"]]) == {"seats": 4}
    _strict_json(api.get("/api/v1/leads").get_data(as_text=True))
    assert [lead["name"] for lead in api.get("/api/v1/leads", query_string={"custom.seats": "4"}).json["items"]] == ["Nanny Infinity"]


def test_search_text_has_a_size_limit(api):
    for url in ("/api/v1/leads", "/api/v1/contacts", "/api/v1/companies", "/api/v1/deals", "/api/v1/tags", "/api/v1/pipelines"):
        assert "q" in _field_errors(api.get(url, query_string={"q": "x" * 201}), "query"), url
        assert api.get(url, query_string={"q": "x" * 200}).status_code == 200, url
