"""The compiled dump (crmcore/api/schema.py) answers exactly what marshmallow would.

Every GET operation of the OpenAPI document is called twice on the same records, filled
in every field: once as the app runs, once with marshmallow's own ``Schema._serialize``
put back, and the two bodies must be equal, byte for byte.
"""

from __future__ import annotations

import re

import marshmallow

from crmcore.api import schema as api_schema


def _fill(api) -> dict[str, int]:
    """One record of every entity, every field set (tags, custom fields, links)."""
    assert api.post("/api/v1/custom-fields", json={"entity": "lead", "key": "region", "label": "Region", "kind": "choice", "choices": ["north", "south"]}).status_code == 201
    company = api.post("/api/v1/companies", json={"name": "Initech", "domain": "initech.example", "industry": "software", "size": "51-200", "annual_revenue": "1200000.50", "website": "https://initech.example", "tags": ["key"]}).get_json()
    contact = api.post("/api/v1/contacts", json={"first_name": "Ann", "last_name": "Lee", "emails": ["ann@initech.example"], "phones": ["+44 20 7946 0958"], "job_title": "CTO", "company_id": company["id"], "tags": ["vip"]}).get_json()
    lead = api.post("/api/v1/leads", json={"name": "Bo Chen", "email": "bo@example.com", "phone": "+4930123456", "company_name": "Globex", "source": "referral", "status": "contacted", "priority": "high", "estimated_value": "25000.00", "budget": "yes", "authority": "cfo", "need": "crm", "timeline": "Q3", "tags": ["hot", "vip"], "custom": {"region": "north"}}).get_json()
    pipeline = api.get("/api/v1/pipelines").get_json()["items"][0]
    stages = pipeline["stages"]
    deal = api.post("/api/v1/deals", json={"title": "Initech rollout", "value": "50000.00", "currency": "EUR", "stage_id": stages[0]["id"], "contact_id": contact["id"], "company_id": company["id"], "expected_close_date": "2027-03-01", "tags": ["big"]}).get_json()
    assert api.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": stages[1]["id"]}).status_code == 200
    activity = api.post("/api/v1/activities", json={"kind": "call", "direction": "out", "subject": "Intro", "content": "Talked", "duration_seconds": 720, "sentiment": 0.4, "outcome": "interested", "lead_id": lead["id"], "deal_id": deal["id"]}).get_json()
    note = api.post("/api/v1/notes", json={"body": "Met at the fair", "pinned": True, "lead_id": lead["id"]}).get_json()
    task = api.post("/api/v1/tasks", json={"title": "Send offer", "due_at": "2027-01-10T09:00:00", "priority": "high", "lead_id": lead["id"]}).get_json()
    tag = api.get("/api/v1/tags").get_json()["items"][0]
    field = api.get("/api/v1/custom-fields").get_json()["items"][0]
    view = api.post("/api/v1/views", json={"entity": "lead", "name": "Hot north", "query": {"status": ["contacted"], "custom.region": "north"}, "shared": True}).get_json()
    for record in (company, contact, lead, deal, activity, note, task, view):
        assert "id" in record, record
    return {
        "activity_id": activity["id"], "company_id": company["id"], "contact_id": contact["id"],
        "deal_id": deal["id"], "lead_id": lead["id"], "note_id": note["id"], "task_id": task["id"],
        "tag_id": tag["id"], "field_id": field["id"], "pipeline_id": pipeline["id"], "stage_id": stages[1]["id"],
        "view_id": view["id"],
    }


def _urls(api, ids: dict[str, int]) -> list[str]:
    """Every GET path of the core's API (plugins' are off for this tenant), its parameters
    filled with the records above."""
    urls = []
    by_collection = {"leads": "lead_id", "contacts": "contact_id", "companies": "company_id", "deals": "deal_id"}
    core = {name for name, bp in api.client.application.blueprints.items() if bp.import_name.startswith("crmcore.")}
    for path, ops in api.get("/api/v1/openapi.json").get_json()["paths"].items():
        if "get" not in ops or path.endswith(".csv") or not set(ops["get"].get("tags", [])) <= core:
            continue
        if "{collection}" in path:
            for collection, key in by_collection.items():
                urls.append(path.replace("{collection}", collection).replace("{record_id}", str(ids[key])))
        elif "{record_id}" in path:
            collection = path.split("/")[3]
            urls.append(path.replace("{record_id}", str(ids[by_collection[collection]])))
        else:
            urls.append(re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path))
    return urls


def _without_exports(body: dict) -> dict:
    """A privacy export without what each read changes: its time and its own audit entries."""
    return {
        key: [i for i in value if not (isinstance(i, dict) and i.get("action") == "export")] if isinstance(value, list) else value
        for key, value in body.items() if key != "exported_at"
    }


def test_compiled_dump_matches_marshmallow_on_every_get_operation(api, monkeypatch):
    ids = _fill(api)
    urls = _urls(api, ids)
    assert len(urls) >= 30, urls
    # The records are really filled in: the comparison below is not between empty pages.
    lead = api.get(f"/api/v1/leads/{ids['lead_id']}").get_json()
    assert lead["tags"] == ["hot", "vip"] and lead["custom"] == {"region": "north"} and lead["estimated_value"] == "25000.00"
    compiled_for: set[str] = set()
    plan = api_schema.Schema._compiled

    def watched(self):
        found = plan(self)
        if found is not None:
            compiled_for.add(type(self).__name__)
        return found

    monkeypatch.setattr(api_schema.Schema, "_compiled", watched)
    for url in urls:
        # Each URL twice in a row (a privacy export writes an audit entry: nothing may
        # happen between the two reads of one URL).
        compiled = api.get(url)
        assert compiled.status_code == 200, (url, compiled.get_data(as_text=True)[:300])
        with monkeypatch.context() as m:
            m.setattr(api_schema.Schema, "_serialize", marshmallow.Schema._serialize)
            reference = api.get(url)
        if url.endswith("/export"):  # its own audit trail grows by one export per read
            assert _without_exports(compiled.get_json()) == _without_exports(reference.get_json()), url
            continue
        assert compiled.get_data(as_text=True) == reference.get_data(as_text=True), url
        assert compiled.headers.get("ETag") == reference.headers.get("ETag"), url
    # The compiled plans really ran (else the comparison above proves nothing).
    assert {"LeadPageSchema", "LeadSchema", "DealSchema", "ContactSchema", "ActivitySchema"} <= compiled_for, compiled_for


def test_compiled_plan_is_used_and_falls_back_per_field():
    from marshmallow import fields

    class Inner(api_schema.Schema):
        n = fields.Integer()

    class Outer(api_schema.Schema):
        name = fields.String()
        when = fields.DateTime()
        price = fields.Decimal(places=2, as_string=True)  # not compiled: marshmallow's own
        dotted = fields.String(attribute="inner.label")  # not compiled: a dotted attribute
        inner = fields.Nested(Inner)
        many = fields.List(fields.Nested(Inner))
        fallback = fields.String(dump_default="none")
        custom = fields.Dict(keys=fields.String())
        counts = fields.Dict(keys=fields.String(), values=fields.Integer())  # not compiled: a value field

    import datetime
    import decimal

    class Obj:
        name = 7
        when = datetime.datetime(2026, 1, 2, 3, 4, 5)
        price = decimal.Decimal("3.14159")
        inner = {"n": "5", "label": "x"}
        many = [{"n": 1}, {"n": 2.0}]
        custom = {1: "x", "k": [1]}
        counts = {"a": "3"}

    schema = Outer()
    expected = {"name": "7", "when": "2026-01-02T03:04:05+00:00", "price": "3.14", "dotted": "x", "inner": {"n": 5}, "many": [{"n": 1}, {"n": 2}], "fallback": "none", "custom": {"1": "x", "k": [1]}, "counts": {"a": 3}}
    assert schema.dump(Obj()) == expected
    assert marshmallow.Schema._serialize(schema, Obj()) == expected  # marshmallow's own walk
    assert schema._compiled() is not None
    assert schema.dump([Obj(), Obj()], many=True) == [expected, expected]


def test_list_items_are_the_records_as_their_own_get_shows_them(api):
    """A list page's items are exactly what GET /<collection>/<id> answers for each (the
    lists read plain rows, the single GETs model instances: both must dump alike)."""
    ids = _fill(api)
    api.post("/api/v1/leads", json={"name": "Second lead"})  # a row with most fields empty
    collections = {"leads": 2, "contacts": 1, "companies": 1, "deals": 1, "activities": 1, "notes": 1, "tasks": 1, "tags": 1, "custom-fields": 1, "pipelines": 1}
    for collection, at_least in collections.items():
        items = api.get(f"/api/v1/{collection}?limit=100").get_json()["items"]
        assert len(items) >= at_least, (collection, items)
        for item in items:
            one = api.get(f"/api/v1/{collection}/{item['id']}")
            assert one.status_code == 200, (collection, item["id"])
            assert item == one.get_json(), collection
    assert ids["lead_id"] in {i["id"] for i in api.get("/api/v1/leads").get_json()["items"]}
