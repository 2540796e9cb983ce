"""POST /api/v1/leads/<id>/convert end to end: new records, linking existing ones,
relinking the lead's activities, atomicity, 409 twice, the lead_converted signal."""

from __future__ import annotations

import contextlib

from crmcore import db
from crmcore.db import tenant_context


@contextlib.contextmanager
def in_tenant(api_env, slug="acme"):
    with db.database.connection_context(), tenant_context(api_env.tenant(slug)):
        yield


def make_lead(api, **data):
    body = {"name": "Ada King Lovelace", "email": "ada@engines.example.com", "phone": "+44 20 7946 0018", "company_name": "Analytical Engines", "estimated_value": "25000", **data}
    response = api.post("/api/v1/leads", json=body)
    assert response.status_code == 201, response.json
    return response.json


def convert(api, lead, expect=200, **body):
    response = api.post(f"/api/v1/leads/{lead['id']}/convert", json=body)
    assert response.status_code == expect, response.json
    return response.json


def counts(api_env, slug="acme"):
    from crmcore.entities.models import Company, Contact, Deal

    with in_tenant(api_env, slug):
        return Contact.select().count(), Company.select().count(), Deal.select().count()


def test_converts_into_new_contact_company_and_deal(api, api_env):
    from crmcore.entities import service
    from crmcore.entities.models import Activity, AuditEntry, Contact, Note, Task

    lead = make_lead(api)
    with in_tenant(api_env):
        other_contact = service.create(Contact, {"first_name": "Already", "email": "linked@example.com"})
        call = service.create(Activity, {"kind": "call", "lead": lead["id"], "subject": "Intro call"})
        note = service.create(Note, {"body": "Keen", "lead": lead["id"]})
        task = service.create(Task, {"title": "Send proposal", "lead": lead["id"]})
        kept = service.create(Note, {"body": "About someone else", "lead": lead["id"], "contact": other_contact.id})

    result = convert(api, lead, create_deal=True)
    contact, company, deal = result["contact"], result["company"], result["deal"]
    assert result["contact_created"] is True and result["company_created"] is True
    assert (contact["first_name"], contact["last_name"], contact["email"]) == ("Ada King", "Lovelace", "ada@engines.example.com")
    assert contact["company_id"] == company["id"] and company["name"] == "Analytical Engines"
    assert deal["title"] == "Ada King Lovelace deal" and deal["value"] == "25000.00"
    assert (deal["contact_id"], deal["company_id"], deal["lead_id"]) == (contact["id"], company["id"], lead["id"])
    assert deal["status"] == "open" and deal["probability"] == 10 and deal["source"] == "manual"
    converted = result["lead"]
    assert converted["status"] == "converted" and converted["converted_at"] is not None
    assert (converted["contact_id"], converted["company_id"]) == (contact["id"], company["id"])
    assert api.get(f"/api/v1/leads/{lead['id']}").json["status"] == "converted"

    with in_tenant(api_env):
        stored = Contact.get_by_id(contact["id"])
        assert stored.phone == "+442079460018" and stored.lifecycle_stage == "opportunity"
        for model, record in ((Activity, call), (Note, note), (Task, task)):
            row = model.get_by_id(record.id)
            assert (row.contact_id, row.company_id, row.lead_id) == (contact["id"], company["id"], lead["id"])
            assert row.version == record.version + 2  # contact and company links: new ETags
        assert Note.get_by_id(kept.id).contact_id == other_contact.id  # an existing link stays
        audit = AuditEntry.get((AuditEntry.entity == "lead") & (AuditEntry.entity_id == lead["id"]) & (AuditEntry.action == "convert"))
        assert audit.changes["deal"] == [None, deal["id"]]


def test_without_deal_or_company(api, api_env):
    lead = make_lead(api, name="Solo", email=None, company_name=None)
    result = convert(api, lead)
    assert result["deal"] is None and result["company"] is None and result["company_created"] is False
    assert (result["contact"]["first_name"], result["contact"]["last_name"], result["contact"]["email"]) == ("Solo", "", None)
    assert counts(api_env) == (1, 0, 0)


def test_links_existing_contact_by_email_and_company_by_name(api, api_env):
    from crmcore.entities import service
    from crmcore.entities.models import Company, Contact

    with in_tenant(api_env):
        company = service.create(Company, {"name": "ANALYTICAL engines"})
        contact = service.create(Contact, {"first_name": "Ada", "last_name": "L.", "email": "ada@engines.example.com"})
    lead = make_lead(api, email="ADA@engines.example.com")
    result = convert(api, lead, deal={"title": "Engine no. 2", "value": "900"})
    assert result["contact_created"] is False and result["company_created"] is False
    assert result["contact"]["id"] == contact.id and result["company"]["id"] == company.id
    assert result["contact"]["company_id"] == company.id  # the contact had no company: now it has
    assert result["deal"]["title"] == "Engine no. 2" and result["deal"]["value"] == "900.00"
    assert counts(api_env) == (1, 1, 1)


def test_links_the_given_contact_and_company(api, api_env, as_role):
    from crmcore.entities import service
    from crmcore.entities.models import Company, Contact

    with in_tenant(api_env):
        company = service.create(Company, {"name": "Chosen Ltd"})
        contact = service.create(Contact, {"first_name": "Chosen", "email": "chosen@example.com"})
    with in_tenant(api_env, "other"):
        foreign = service.create(Contact, {"first_name": "Foreign"})
        foreign_company = service.create(Company, {"name": "Foreign Ltd"})
    lead = make_lead(api)
    bad = api.post(f"/api/v1/leads/{lead['id']}/convert", json={"contact_id": foreign.id, "company_id": company.id})
    assert bad.status_code == 422 and "contact_id" in bad.json["errors"]["json"]
    bad = api.post(f"/api/v1/leads/{lead['id']}/convert", json={"company_id": foreign_company.id})
    assert bad.status_code == 422 and "company_id" in bad.json["errors"]["json"]
    assert counts(api_env) == (1, 1, 0)
    result = convert(api, lead, contact_id=contact.id, company_id=company.id)
    assert (result["contact"]["id"], result["company"]["id"]) == (contact.id, company.id)
    assert counts(api_env) == (1, 1, 0)


def test_all_or_nothing(api, api_env, captured_signals):
    lead = make_lead(api)
    version = api.get(f"/api/v1/leads/{lead['id']}").json["version"]
    with captured_signals("lead_converted", "contact_created", "company_created", "deal_created", "lead_updated") as sent:
        response = api.post(f"/api/v1/leads/{lead['id']}/convert", json={"create_deal": True, "deal": {"stage_id": 999999}})
        assert response.status_code == 422
        assert "stage_id" in response.json["errors"]["json"]["deal"]
        # The contact and company were written before the deal failed, and rolled back.
        assert counts(api_env) == (0, 0, 0)
        unchanged = api.get(f"/api/v1/leads/{lead['id']}").json
        assert unchanged["status"] == "new" and unchanged["contact_id"] is None and unchanged["version"] == version
        other_pipeline_stage = api.post("/api/v1/pipelines", json={"name": "P", "stages": [{"name": "S"}]}).json["stages"][0]["id"]
        sales = next(p for p in api.get("/api/v1/pipelines").json["items"] if p["is_default"])
        response = api.post(f"/api/v1/leads/{lead['id']}/convert", json={"deal": {"pipeline_id": sales["id"], "stage_id": other_pipeline_stage}})
        assert response.status_code == 422 and counts(api_env) == (0, 0, 0)
    assert sent == []
    assert api.post(f"/api/v1/leads/{lead['id']}/convert", json={"create_deal": False, "deal": {"title": "x"}}).status_code == 422
    assert api.post(f"/api/v1/leads/{lead['id']}/convert", json={"deal": {"value": "-3"}}).status_code == 422


def test_converting_twice_is_409(api, api_env):
    lead = make_lead(api)
    convert(api, lead, create_deal=True)
    again = api.post(f"/api/v1/leads/{lead['id']}/convert", json={"create_deal": True})
    assert again.status_code == 409
    assert counts(api_env) == (1, 1, 1)


def test_stale_if_match_is_412(api, api_env):
    lead = make_lead(api)
    etag = api.get(f"/api/v1/leads/{lead['id']}").headers["ETag"]
    api.patch(f"/api/v1/leads/{lead['id']}", json={"priority": "high"})
    response = api.post(f"/api/v1/leads/{lead['id']}/convert", json={}, headers={"If-Match": etag})
    assert response.status_code == 412 and counts(api_env) == (0, 0, 0)


def test_lead_converted_signal_after_commit(api, captured_signals):
    lead = make_lead(api)
    with captured_signals("lead_converted", "deal_created") as sent:
        result = convert(api, lead, create_deal=True)
    converted = [s for s in sent if s[0] == "lead_converted"]
    assert len(converted) == 1
    _name, tenant, data = converted[0]
    assert tenant.slug == "acme"
    assert data["lead"].id == lead["id"] and data["lead"].status == "converted"
    assert (data["contact"].id, data["company"].id, data["deal"].id) == (result["contact"]["id"], result["company"]["id"], result["deal"]["id"])
    assert data["actor"].role == "admin"
    assert [s[0] for s in sent].count("deal_created") == 1


def test_roles_tenants_and_auth(api, api_env, as_role):
    lead = make_lead(api)
    assert as_role("viewer").post(f"/api/v1/leads/{lead['id']}/convert", json={}).status_code == 403
    assert as_role("admin", "other").post(f"/api/v1/leads/{lead['id']}/convert", json={}).status_code == 404
    assert api_env.client("acme").post(f"/api/v1/leads/{lead['id']}/convert", json={}).status_code == 401
    assert api.post("/api/v1/leads/999999/convert", json={}).status_code == 404
    assert counts(api_env) == (0, 0, 0)
    assert convert(as_role("agent"), lead)["lead"]["status"] == "converted"
