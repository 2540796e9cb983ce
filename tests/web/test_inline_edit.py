"""Inline editing (/app/inline/<entity>/<id>): one common field changed from the record's
page through the pages' own write path, with the version the page showed."""

from __future__ import annotations

import json
import re
from html import unescape

from crmcore.entities import service
from crmcore.entities.models import Company, Contact, Deal, Lead


def edit(client, entity: str, record_id: int, field: str, value: str, version: int):
    return client.post(f"/app/inline/{entity}/{record_id}", data={"csrf_token": client.csrf, "field": field, "value": value, "version": str(version)})


def config(client, path: str) -> dict | None:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'<script type="application/json" id="inline-edit-config">(.*?)</script>', html, re.S)
    return json.loads(unescape(match.group(1))) if match else None


def test_the_page_describes_its_editable_fields_to_writers_only(signed_in, in_tenant):
    rep, viewer = signed_in("agent"), signed_in("viewer")
    with in_tenant():
        lead = service.create(Lead, {"name": "Grace", "status": "new", "owner": rep.user.id})
    described = config(rep, f"/app/leads/{lead.id}")
    assert described["url"] == f"/app/inline/lead/{lead.id}" and described["version"] == 1
    assert described["fields"]["status"]["value"] == "new"
    assert ["qualified", "Qualified"] in described["fields"]["status"]["options"]
    assert described["fields"]["owner_id"]["value"] == str(rep.user.id)
    page = rep.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert 'data-inline="status"' in page and 'data-inline="owner_id"' in page
    assert config(viewer, f"/app/leads/{lead.id}") is None
    assert edit(viewer, "lead", lead.id, "status", "qualified", 1).status_code == 403


def test_a_field_is_saved_and_answered_as_the_page_shows_it(signed_in, in_tenant):
    rep = signed_in("agent")
    with in_tenant():
        lead = service.create(Lead, {"name": "Grace", "status": "new", "estimated_value": "10"})
    answer = edit(rep, "lead", lead.id, "status", "qualified", 1)
    assert answer.status_code == 200
    assert answer.get_json() == {"field": "status", "value": "qualified", "text": "qualified", "version": 2}
    money = edit(rep, "lead", lead.id, "estimated_value", "12500.5", 2)
    assert money.get_json()["text"] == "12,500.50" and money.get_json()["version"] == 3
    owner = edit(rep, "lead", lead.id, "owner_id", str(rep.user.id), 3).get_json()
    assert owner["value"] == str(rep.user.id) and owner["text"] == rep.user.name
    with in_tenant():
        stored = Lead.get_by_id(lead.id)
        assert (stored.status, float(stored.estimated_value), stored.owner_id, stored.name) == ("qualified", 12500.5, rep.user.id, "Grace")


def test_only_the_edited_field_changes(signed_in, in_tenant):
    """A contact's company is a page-only input: an inline edit of another field keeps it."""
    rep = signed_in("agent")
    with in_tenant():
        company = service.create(Company, {"name": "Globex"})
        contact = service.create(Contact, {"first_name": "Hank", "last_name": "Scorpio", "company": company.id, "custom": {}})
    assert edit(rep, "contact", contact.id, "lifecycle_stage", "customer", 1).status_code == 200
    with in_tenant():
        stored = Contact.get_by_id(contact.id)
        assert (stored.lifecycle_stage, stored.company_id, stored.first_name) == ("customer", company.id, "Hank")


def test_a_stale_version_is_refused_with_the_current_value(signed_in, in_tenant):
    rep = signed_in("agent")
    with in_tenant():
        lead = service.create(Lead, {"name": "Grace", "status": "new"})
        service.update(lead, {"status": "contacted"})  # a colleague, meanwhile
    answer = edit(rep, "lead", lead.id, "status", "qualified", 1)
    assert answer.status_code == 412
    body = answer.get_json()
    assert body["value"] == "contacted" and body["version"] == 2
    assert "Someone else changed this lead while you were editing. Status is now “contacted”." == body["message"]
    with in_tenant():
        assert Lead.get_by_id(lead.id).status == "contacted"
    assert edit(rep, "lead", lead.id, "status", "qualified", body["version"]).status_code == 200  # "save mine anyway"


def test_bad_values_duplicates_and_unknown_fields_are_explained(signed_in, in_tenant):
    rep = signed_in("agent")
    with in_tenant():
        taken = service.create(Lead, {"name": "Ada", "email": "ada@example.com"})
        lead = service.create(Lead, {"name": "Grace"})
        deal_company = service.create(Company, {"name": "Initech"})
    bad = edit(rep, "lead", lead.id, "status", "sleeping", 1)
    assert bad.status_code == 422 and bad.get_json()["errors"]["status"]
    assert edit(rep, "lead", lead.id, "email", "not-an-address", 1).status_code == 422
    duplicate = edit(rep, "lead", lead.id, "email", "ada@example.com", 1)
    assert duplicate.status_code == 409
    assert duplicate.get_json() == {"message": "Another lead has this email: “Ada”.", "existing_url": f"/app/leads/{taken.id}"}
    assert edit(rep, "lead", lead.id, "name", "Renamed", 1).status_code == 422  # not a field edited in place
    assert rep.post(f"/app/inline/lead/{lead.id}", data={"csrf_token": rep.csrf, "field": "status", "value": "new"}).status_code == 422
    assert edit(rep, "task", lead.id, "status", "new", 1).status_code == 404
    assert edit(rep, "company", deal_company.id, "annual_revenue", "lots", 1).status_code == 422


def test_another_tenants_record_does_not_exist(signed_in, in_tenant):
    stranger = signed_in("admin", slug="other")
    with in_tenant():
        lead = service.create(Lead, {"name": "Grace"})
        deal_count = Deal.select().count()
    assert edit(stranger, "lead", lead.id, "status", "qualified", 1).status_code == 404
    with in_tenant():
        assert Lead.get_by_id(lead.id).status == "new" and Deal.select().count() == deal_count
