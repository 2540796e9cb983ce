"""Merging duplicates (POST /<entity>/<id>/merge) and privacy requests
(GET /<entity>/<id>/export, POST /<entity>/<id>/erase), on a real database."""

from __future__ import annotations

import json

import pytest

from crmcore import hookimpl
from crmcore.contrib import PrivacySection
from crmcore.entities import service
from crmcore.entities.models import (
    Activity,
    AuditEntry,
    Contact,
    Deal,
    Lead,
    Note,
    Pipeline,
    Stage,
    Tagging,
    Task,
)
from tests.api.test_companies import make as make_company
from tests.api.test_contacts import in_tenant
from tests.api.test_contacts import make as make_contact


def make_lead(api, **data):
    response = api.post("/api/v1/leads", json={"name": "Ada Lovelace", **data})
    assert response.status_code == 201, response.json
    return response.json


def attach(api_env, slug: str = "acme", **link: int) -> dict[str, int]:
    """An activity, a note, a task and a deal linked to ``link`` (lead=, contact=, company=),
    written through the service (so they are audited like API writes); returns their ids."""
    with in_tenant(api_env, slug):
        pipeline = Pipeline.get(Pipeline.is_default == True)
        stage = Stage.select().where(Stage.pipeline == pipeline).order_by(Stage.order).first()
        label = "-".join(f"{k}{v}" for k, v in link.items())
        return {
            "activity": service.create(Activity, {"kind": "call", "subject": f"Call about {label}", "content": "Ada said her number is +44 20 7946 0018", "outcome": "Ada liked it", **link}).id,
            "note": service.create(Note, {"body": f"Ada Lovelace prefers email ({label})", **link}).id,
            "task": service.create(Task, {"title": f"Send Ada the offer ({label})", **link}).id,
            "deal": service.create(Deal, {"title": f"Engines {label}", "value": 1000, "pipeline": pipeline, "stage": stage, **link}).id,
        }


def linked_to(api_env, field: str, record_id: int) -> dict[str, set[int]]:
    with in_tenant(api_env):
        return {model.__name__.lower(): {r.id for r in model.select().where(getattr(model, field) == record_id)} for model in (Activity, Note, Task, Deal)}


# --------------------------------------------------------------------------- merge


def test_merge_contacts_moves_everything_and_deletes_the_other(api, api_env, captured_signals):
    company = make_company(api)
    kept = make_contact(api, email="ada@example.com", phone=None, job_title=None, tags=["vip"])
    other = make_contact(api, first_name="Augusta", email="augusta@example.com", emails=["ada@old.example"], phone="+44 20 7946 0018", job_title="Countess", company_id=company["id"], tags=["uk", "vip"])
    mine = attach(api_env, contact=kept["id"])
    theirs = attach(api_env, contact=other["id"])
    lead = make_lead(api, email="lead@example.com")
    with in_tenant(api_env):
        Lead.update(contact=other["id"]).where(Lead.id == lead["id"]).execute()

    etag = api.get(f"/api/v1/contacts/{kept['id']}").headers["ETag"]
    with captured_signals("contact_merged", "contact_deleted") as sent:
        response = api.post(f"/api/v1/contacts/{kept['id']}/merge", json={"other_id": other["id"]}, headers={"If-Match": etag})
    assert response.status_code == 200, response.json
    merged = response.json
    assert merged["first_name"] == "Ada"  # filled fields stay
    assert merged["email"] == "ada@example.com" and merged["emails"] == ["augusta@example.com", "ada@old.example"]
    assert merged["phone"] == "+442079460018" and merged["job_title"] == "Countess" and merged["company_id"] == company["id"]
    assert merged["tags"] == ["uk", "vip"]
    assert response.headers["ETag"] != etag

    assert api.get(f"/api/v1/contacts/{other['id']}").status_code == 404
    moved = linked_to(api_env, "contact", kept["id"])
    assert moved == {kind: {mine[kind], theirs[kind]} for kind in ("activity", "note", "task", "deal")}
    assert linked_to(api_env, "contact", other["id"]) == {"activity": set(), "note": set(), "task": set(), "deal": set()}
    with in_tenant(api_env):
        assert Lead.get_by_id(lead["id"]).contact_id == kept["id"]
        assert not Tagging.select().where((Tagging.entity == "contact") & (Tagging.entity_id == other["id"])).exists()
        entry = AuditEntry.select().where((AuditEntry.entity == "contact") & (AuditEntry.entity_id == kept["id"]) & (AuditEntry.action == "merge")).get()
        assert entry.changes["merged_id"] == [None, other["id"]]
        assert entry.changes["job_title"] == [None, "Countess"]
        assert entry.changes["moved"][1] == {"activity": 1, "note": 1, "task": 1, "deal": 1, "lead": 1, "tags": 2}
    assert [s[0] for s in sent] == ["contact_deleted", "contact_merged"]
    assert sent[1][2]["merged_id"] == other["id"] and sent[1][2]["record"].id == kept["id"]
    # The other's addresses now belong to the kept contact.
    assert api.post("/api/v1/contacts", json={"first_name": "X", "email": "augusta@example.com"}).json["existing"]["id"] == kept["id"]


def test_merge_companies_moves_contacts_leads_and_deals(api, api_env):
    kept = make_company(api, name="Engines", domain=None, tags=["a"])
    other = make_company(api, name="Engines Ltd", domain="engines.example", industry="Software", tags=["b"])
    staff = make_contact(api, company_id=other["id"])
    theirs = attach(api_env, company=other["id"])
    response = api.post(f"/api/v1/companies/{kept['id']}/merge", json={"other_id": other["id"]})
    assert response.status_code == 200, response.json
    assert response.json["name"] == "Engines" and response.json["domain"] == "engines.example" and response.json["industry"] == "Software"
    assert response.json["tags"] == ["a", "b"]
    assert api.get(f"/api/v1/companies/{other['id']}").status_code == 404
    assert [c["id"] for c in api.get(f"/api/v1/companies/{kept['id']}/contacts").json["items"]] == [staff["id"]]
    assert linked_to(api_env, "company", kept["id"]) == {kind: {theirs[kind]} for kind in ("activity", "note", "task", "deal")}


def test_merge_leads_takes_over_the_others_email(api, api_env):
    kept = make_lead(api, name="Ada", email=None, tags=["x"])
    other = make_lead(api, name="Ada L.", email="ada@example.com", phone="+44 20 7946 0018", need="Engines")
    theirs = attach(api_env, lead=other["id"])
    response = api.post(f"/api/v1/leads/{kept['id']}/merge", json={"other_id": other["id"]})
    assert response.status_code == 200, response.json
    assert response.json["name"] == "Ada" and response.json["email"] == "ada@example.com" and response.json["need"] == "Engines"
    assert api.get(f"/api/v1/leads/{other['id']}").status_code == 404
    assert linked_to(api_env, "lead", kept["id"]) == {kind: {theirs[kind]} for kind in ("activity", "note", "task", "deal")}


def test_merge_bad_requests(api, as_role):
    a, b = make_contact(api, email="a@example.com"), make_contact(api, email="b@example.com")
    url = f"/api/v1/contacts/{a['id']}/merge"
    assert api.post(url, json={"other_id": a["id"]}).status_code == 422
    missing = api.post(url, json={})
    assert missing.status_code == 422 and "other_id" in missing.json["errors"]["json"]
    assert api.post(url, json={"other_id": 99999}).status_code == 404
    assert api.post("/api/v1/contacts/99999/merge", json={"other_id": b["id"]}).status_code == 404
    assert api.post(url, json={"other_id": b["id"]}, headers={"If-Match": '"0-0"'}).status_code == 412
    assert as_role("agent").post(url, json={"other_id": b["id"]}).status_code == 403
    assert as_role("viewer").post(url, json={"other_id": b["id"]}).status_code == 403
    assert api.client.post(url, json={"other_id": b["id"]}).status_code == 401  # no token
    # Nothing happened.
    assert api.get(f"/api/v1/contacts/{b['id']}").status_code == 200
    assert as_role("manager").post(url, json={"other_id": b["id"]}).status_code == 200


def test_merge_across_tenants_is_404(api, as_role, api_env):
    other_admin = as_role("admin", "other")
    for plural, make in (("contacts", lambda who, n: make_contact(who, email=f"{n}@example.com")), ("companies", lambda who, n: make_company(who, name=n)), ("leads", lambda who, n: make_lead(who, email=f"{n}@example.com"))):
        mine_a, mine_b = make(api, "a"), make(api, "b")
        theirs = make(other_admin, "t")
        assert other_admin.post(f"/api/v1/{plural}/{mine_a['id']}/merge", json={"other_id": mine_b["id"]}).status_code == 404
        assert other_admin.post(f"/api/v1/{plural}/{theirs['id']}/merge", json={"other_id": mine_a["id"]}).status_code == 404
        assert api.post(f"/api/v1/{plural}/{mine_a['id']}/merge", json={"other_id": theirs["id"]}).status_code == 404
        assert api.get(f"/api/v1/{plural}/{mine_b['id']}").status_code == 200
        assert other_admin.get(f"/api/v1/{plural}/{theirs['id']}").status_code == 200


# --------------------------------------------------------------------------- privacy

PERSONAL = ("ada", "lovelace", "7946", "analyst", "europe/london")


def assert_no_personal_data(text: str) -> None:
    lowered = text.lower()
    for needle in PERSONAL:
        assert needle not in lowered, f"{needle!r} is still in {text[:500]}"


def test_export_and_erase_contact(api, api_env, as_role):
    company = make_company(api, name="Engines")
    contact = make_contact(api, email="ada@example.com", emails=["ada@work.example"], phone="+44 20 7946 0018", job_title="Analyst", timezone="Europe/London", company_id=company["id"], tags=["vip"])
    api.patch(f"/api/v1/contacts/{contact['id']}", json={"last_name": "King-Lovelace"})
    duplicate = make_contact(api, first_name="Augusta Ada", email="augusta@example.com")
    dup_links = attach(api_env, contact=duplicate["id"])
    assert api.post(f"/api/v1/contacts/{contact['id']}/merge", json={"other_id": duplicate["id"]}).status_code == 200
    links = attach(api_env, contact=contact["id"])
    lead = make_lead(api, name="Ada (web form)", email="ada-lead@example.com", need="Ada wants engines")
    lead_links = attach(api_env, lead=lead["id"])
    with in_tenant(api_env):
        Lead.update(contact=contact["id"]).where(Lead.id == lead["id"]).execute()
    bystander = make_contact(api, first_name="Charles", last_name="Babbage", email="charles@example.com")
    bystander_links = attach(api_env, contact=bystander["id"])

    export = api.get(f"/api/v1/contacts/{contact['id']}/export")
    assert export.status_code == 200, export.json
    assert "attachment" in export.headers["Content-Disposition"]
    data = export.json
    assert data["entity"] == "contact" and data["contact"]["email"] == "ada@example.com" and data["contact"]["last_name"] == "King-Lovelace"
    assert data["tags"] == ["vip"] and data["contact"]["tags"] == ["vip"]
    assert [x["id"] for x in data["leads"]] == [lead["id"]]
    for kind, key in (("activity", "activities"), ("note", "notes"), ("task", "tasks"), ("deal", "deals")):
        assert {x["id"] for x in data[key]} == {links[kind], dup_links[kind], lead_links[kind]}, key
    audited = {(x["entity"], x["entity_id"], x["action"]) for x in data["audit"]}
    assert {("contact", contact["id"], "create"), ("contact", contact["id"], "update"), ("contact", contact["id"], "merge"), ("contact", duplicate["id"], "create"), ("lead", lead["id"], "create"), ("activity", links["activity"], "create")} <= audited
    assert "charles" not in json.dumps(data).lower()  # nor the bystander's history

    assert as_role("manager").post(f"/api/v1/contacts/{contact['id']}/erase").status_code == 403
    assert as_role("manager").get(f"/api/v1/contacts/{contact['id']}/export").status_code == 403
    erased = api.post(f"/api/v1/contacts/{contact['id']}/erase")
    assert erased.status_code == 200, erased.json
    assert erased.json["erased"]["contact"] == 1 and erased.json["erased"]["lead"] == 1 and erased.json["erased"]["activity"] == 3

    got = api.get(f"/api/v1/contacts/{contact['id']}")
    assert got.json["name"] == "Erased" and got.json["email"] is None and got.json["emails"] == [] and got.json["phone"] is None
    assert got.json["company_id"] == company["id"] and got.json["tags"] == ["vip"]
    assert_no_personal_data(got.get_data(as_text=True))
    assert_no_personal_data(api.get("/api/v1/contacts?limit=500").get_data(as_text=True))
    assert api.get("/api/v1/contacts?q=ada").json["items"] == []
    assert_no_personal_data(api.get(f"/api/v1/leads/{lead['id']}").get_data(as_text=True))
    assert_no_personal_data(api.get(f"/api/v1/contacts/{contact['id']}/export").get_data(as_text=True))
    with in_tenant(api_env):
        # Audit entries: nothing personal left about the person (the bystander's stay).
        bystander_keys = {("contact", bystander["id"])} | set(bystander_links.items())
        assert_no_personal_data(json.dumps([e.changes for e in AuditEntry.select() if (e.entity, e.entity_id) not in bystander_keys]))
        erase_entry = AuditEntry.get((AuditEntry.entity == "contact") & (AuditEntry.entity_id == contact["id"]) & (AuditEntry.action == "erase"))
        assert erase_entry.changes["erased"][1]["contact"] == 1
        # Deals stay, linked; free text is gone; the bystander keeps everything.
        for key in ("deal",):
            assert Deal.get_by_id(links[key]).contact_id == contact["id"]
            assert Deal.get_by_id(lead_links[key]).lead_id == lead["id"]
        texts = [(a.subject, a.content, a.outcome) for a in Activity.select().where(Activity.id.in_([links["activity"], dup_links["activity"], lead_links["activity"]]))]
        assert texts == [("", "", None)] * 3
        assert {n.body for n in Note.select().where(Note.id.in_([links["note"], lead_links["note"]]))} == {""}
        assert {t.title for t in Task.select().where(Task.id.in_([links["task"], lead_links["task"]]))} == {"Erased"}
        assert "Ada" in Activity.get_by_id(bystander_links["activity"]).content
        assert Contact.get_by_id(bystander["id"]).last_name == "Babbage"
        # (On SQLite the bystander may have the merged duplicate's id: its latest "create".)
        bystander_audit = AuditEntry.select().where((AuditEntry.entity == "contact") & (AuditEntry.entity_id == bystander["id"]) & (AuditEntry.action == "create")).order_by(AuditEntry.id.desc()).first()
        assert bystander_audit.changes["email"] == [None, "charles@example.com"]
    # The address is free for a new contact.
    assert api.post("/api/v1/contacts", json={"first_name": "New", "email": "ada@example.com"}).status_code == 201


def test_export_and_erase_lead(api, api_env, captured_signals):
    lead = make_lead(api, email="ada@example.com", phone="+44 20 7946 0018", company_name="Analyst Engines", need="Ada needs engines", tags=["web"])
    links = attach(api_env, lead=lead["id"])
    data = api.get(f"/api/v1/leads/{lead['id']}/export").json
    assert data["entity"] == "lead" and data["lead"]["email"] == "ada@example.com" and data["tags"] == ["web"]
    assert {x["id"] for x in data["deals"]} == {links["deal"]} and {x["id"] for x in data["notes"]} == {links["note"]}
    assert any(x["action"] == "create" and x["entity"] == "lead" for x in data["audit"])

    with captured_signals("lead_erased", "lead_updated") as sent:
        assert api.post(f"/api/v1/leads/{lead['id']}/erase").status_code == 200
    assert [(name, data["record_id"]) for name, _tenant, data in sent] == [("lead_erased", lead["id"])]  # no changes with old values
    got = api.get(f"/api/v1/leads/{lead['id']}")
    assert got.json["name"] == "Erased" and got.json["email"] is None and got.json["need"] is None
    assert_no_personal_data(got.get_data(as_text=True))
    assert_no_personal_data(api.get(f"/api/v1/leads/{lead['id']}/export").get_data(as_text=True))
    with in_tenant(api_env):
        assert_no_personal_data(json.dumps([e.changes for e in AuditEntry.select()]))
        assert Deal.get_by_id(links["deal"]).lead_id == lead["id"]


def test_privacy_roles_and_tenants(api, as_role, api_env):
    contact = make_contact(api, email="ada@example.com")
    lead = make_lead(api)
    other = as_role("admin", "other")
    for url in (f"/api/v1/contacts/{contact['id']}", f"/api/v1/leads/{lead['id']}"):
        assert other.get(url + "/export").status_code == 404
        assert other.post(url + "/erase").status_code == 404
        assert as_role("viewer").get(url + "/export").status_code == 403
        assert as_role("agent").post(url + "/erase").status_code == 403
        assert api.client.get(url + "/export").status_code == 401
    assert api.get("/api/v1/contacts/99999/export").status_code == 404
    assert api.post("/api/v1/leads/99999/erase").status_code == 404
    assert api.get(f"/api/v1/contacts/{contact['id']}").json["email"] == "ada@example.com"


# --------------------------------------------------------------------------- plugins' part

@pytest.fixture
def app(api_env):
    """register_plugin works on the API environment's app (not a second one)."""
    return api_env.app


class Probe:
    """A plugin that stores "data" about records and records what it was asked."""

    def __init__(self, fail: str = ""):
        self.calls: list[tuple[str, dict]] = []
        self.fail = fail

    def _called(self, hook: str, **kw):
        self.calls.append((hook, kw))
        if hook == self.fail:
            raise RuntimeError("probe bug: ada@example.com")  # its text never reaches the client

    @hookimpl
    def crm_privacy_export(self, tenant, entity, record_id, lead_ids, contact_ids):
        self._called("crm_privacy_export", tenant=tenant.slug, entity=entity, record_id=record_id, lead_ids=lead_ids, contact_ids=contact_ids)
        return [PrivacySection("probe", {"lead_ids": lead_ids, "contact_ids": contact_ids})]

    @hookimpl
    def crm_privacy_erase(self, tenant, entity, record_id, lead_ids, contact_ids):
        self._called("crm_privacy_erase", entity=entity, record_id=record_id, lead_ids=lead_ids, contact_ids=contact_ids)
        return {"probe_rows": 3, "probe_empty": 0}

    @hookimpl
    def crm_merge_records(self, tenant, entity, kept_id, merged_id):
        # The merged record still exists while plugins move their links.
        from crmcore.entities.models import Lead

        self._called("crm_merge_records", entity=entity, kept_id=kept_id, merged_id=merged_id, exists=entity != "lead" or Lead.select().where(Lead.id == merged_id).exists())
        return {"probe_links": 1}


def contact_with_lead(api, api_env):
    contact = make_contact(api, email="ada@example.com")
    lead = make_lead(api, email="ada-lead@example.com")
    with in_tenant(api_env):
        Lead.update(contact=contact["id"]).where(Lead.id == lead["id"]).execute()
    return contact, lead


def test_hook_crm_privacy_export(api, api_env, register_plugin):
    probe = register_plugin(Probe(), name="probe")
    contact, lead = contact_with_lead(api, api_env)
    data = api.get(f"/api/v1/contacts/{contact['id']}/export").json
    assert data["plugins"] == {"probe": {"lead_ids": [lead["id"]], "contact_ids": [contact["id"]]}}
    assert data["errors"] == {}
    assert probe.calls == [("crm_privacy_export", {"tenant": "acme", "entity": "contact", "record_id": contact["id"], "lead_ids": [lead["id"]], "contact_ids": [contact["id"]]})]
    assert api.get(f"/api/v1/leads/{lead['id']}/export").json["plugins"]["probe"] == {"lead_ids": [lead["id"]], "contact_ids": []}


def test_export_names_a_failing_plugin_and_still_answers(api, api_env, register_plugin):
    register_plugin(Probe(fail="crm_privacy_export"), name="probe")
    lead = make_lead(api, email="ada@example.com")
    response = api.get(f"/api/v1/leads/{lead['id']}/export")
    assert response.status_code == 200
    assert response.json["lead"]["email"] == "ada@example.com" and "probe" not in response.json["plugins"]
    assert "crm_privacy_export failed (RuntimeError)" in response.json["errors"]["probe"]


def test_hook_crm_privacy_erase(api, api_env, register_plugin):
    probe = register_plugin(Probe(), name="probe")
    contact, lead = contact_with_lead(api, api_env)
    erased = api.post(f"/api/v1/contacts/{contact['id']}/erase")
    assert erased.status_code == 200, erased.json
    assert erased.json["erased"]["probe_rows"] == 3 and "probe_empty" not in erased.json["erased"]
    assert probe.calls == [("crm_privacy_erase", {"entity": "contact", "record_id": contact["id"], "lead_ids": [lead["id"]], "contact_ids": [contact["id"]]})]
    with in_tenant(api_env):
        entry = AuditEntry.get((AuditEntry.entity == "contact") & (AuditEntry.action == "erase"))
        assert entry.changes["erased"][1]["probe_rows"] == 3


def test_a_failing_erase_hook_refuses_the_whole_erase(api, api_env, register_plugin):
    register_plugin(Probe(fail="crm_privacy_erase"), name="probe")
    lead = make_lead(api, email="ada@example.com", phone="+44 20 7946 0018", need="Ada needs engines")
    links = attach(api_env, lead=lead["id"])
    response = api.post(f"/api/v1/leads/{lead['id']}/erase")
    assert response.status_code == 503
    assert response.json["plugin"] == "probe" and "'probe'" in response.json["message"] and "nothing was changed" in response.json["message"]
    assert "ada@" not in response.get_data(as_text=True)  # the exception's text stays in the log
    # Nothing of the core was erased.
    got = api.get(f"/api/v1/leads/{lead['id']}").json
    assert got["name"] == "Ada Lovelace" and got["email"] == "ada@example.com" and got["need"] == "Ada needs engines"
    with in_tenant(api_env):
        assert "7946" in Activity.get_by_id(links["activity"]).content
        assert Note.get_by_id(links["note"]).body.startswith("Ada Lovelace")
        assert not AuditEntry.select().where(AuditEntry.action == "erase").exists()
        create = AuditEntry.get((AuditEntry.entity == "lead") & (AuditEntry.entity_id == lead["id"]) & (AuditEntry.action == "create"))
        assert create.changes["email"] == [None, "ada@example.com"]


def test_hook_crm_merge_records(api, api_env, register_plugin):
    probe = register_plugin(Probe(), name="probe")
    kept, other = make_lead(api, name="Ada"), make_lead(api, name="Ada L.", email="ada@example.com")
    assert api.post(f"/api/v1/leads/{kept['id']}/merge", json={"other_id": other["id"]}).status_code == 200
    assert probe.calls == [("crm_merge_records", {"entity": "lead", "kept_id": kept["id"], "merged_id": other["id"], "exists": True})]
    with in_tenant(api_env):
        entry = AuditEntry.get((AuditEntry.entity == "lead") & (AuditEntry.action == "merge"))
        assert entry.changes["moved"][1] == {"probe_links": 1}


def test_a_failing_merge_hook_refuses_the_merge(api, api_env, register_plugin):
    register_plugin(Probe(fail="crm_merge_records"), name="probe")
    kept, other = make_contact(api, email="a@example.com"), make_contact(api, email="b@example.com", job_title="Countess")
    theirs = attach(api_env, contact=other["id"])
    response = api.post(f"/api/v1/contacts/{kept['id']}/merge", json={"other_id": other["id"]})
    assert response.status_code == 503 and response.json["plugin"] == "probe"
    assert api.get(f"/api/v1/contacts/{other['id']}").json["job_title"] == "Countess"
    assert api.get(f"/api/v1/contacts/{kept['id']}").json["job_title"] is None
    assert linked_to(api_env, "contact", other["id"]) == {kind: {theirs[kind]} for kind in ("activity", "note", "task", "deal")}


def test_a_plugin_the_tenant_has_off_is_not_asked(api, api_env, register_plugin):
    probe = register_plugin(Probe(fail="crm_privacy_erase"), name="probe", always_on=False)  # acme does not list it
    lead = make_lead(api, email="ada@example.com")
    assert api.get(f"/api/v1/leads/{lead['id']}/export").json["plugins"] == {}
    assert api.post(f"/api/v1/leads/{lead['id']}/erase").status_code == 200
    assert probe.calls == []


class Sloppy:
    """Answers that are not what the hooks promise."""

    @hookimpl
    def crm_privacy_export(self, tenant):
        return {"not": "a section"}

    @hookimpl
    def crm_privacy_erase(self, tenant):
        return "done"


def test_malformed_answers_are_refused_like_failures(api, api_env, register_plugin):
    register_plugin(Sloppy(), name="sloppy")
    lead = make_lead(api, email="ada@example.com")
    data = api.get(f"/api/v1/leads/{lead['id']}/export").json
    assert "sloppy" in data["errors"] and data["plugins"] == {}
    response = api.post(f"/api/v1/leads/{lead['id']}/erase")
    assert response.status_code == 503 and response.json["plugin"] == "sloppy"
    assert api.get(f"/api/v1/leads/{lead['id']}").json["email"] == "ada@example.com"
