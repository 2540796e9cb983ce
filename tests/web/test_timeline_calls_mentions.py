"""Record timelines: calls show outcome, duration and notes; files appear; a company's
timeline rolls up its contacts' and deals' activity (paged); @mentions in notes notify."""

from __future__ import annotations

import io

from crmcore import db
from crmcore.entities.models import Activity, Company, Contact, Deal, Lead, Note, Pipeline, Stage
from crmcore.entities.service import create
from crmcore.notifications import Notification


def seed(web_env, slug="acme"):
    with web_env.app.app_context(), db.connection(), db.tenant_context(web_env.tenant(slug)):
        company = create(Company, {"name": "Globex"})
        contact = create(Contact, {"first_name": "Hank", "last_name": "Scorpio", "company": company.id})
        pipeline = Pipeline.get(Pipeline.is_default == True)  # noqa: E712
        stage = Stage.select().where(Stage.pipeline == pipeline).first()
        deal = create(Deal, {"title": "Doomsday device", "value": 100, "pipeline": pipeline, "stage": stage, "company": company.id})
        other_company = create(Company, {"name": "Initech"})
        lead = create(Lead, {"name": "Grace Hopper"})
        return company, contact, deal, other_company, lead


def test_a_logged_call_shows_outcome_duration_and_notes(signed_in, web_env):
    client = signed_in("agent")
    *_, lead = seed(web_env)
    logged = client.post(f"/app/leads/{lead.id}/calls", data={"csrf_token": client.csrf, "subject": "Intro call", "content": "She wants a demo on Friday",
                                                              "outcome": "Interested", "duration_minutes": "12.5"})
    assert logged.status_code == 302, logged.get_data(as_text=True)
    page = client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert "Outcome: <strong>Interested</strong>" in page and "Duration: 12 min 30 s" in page and "She wants a demo on Friday" in page
    api = client.get(f"/api/v1/leads/{lead.id}/timeline", headers={"Authorization": f"Bearer {web_env.token()}"}).get_json()
    [call] = [i for i in api["items"] if i["type"] == "activity"]
    assert (call["outcome"], call["duration_seconds"], call["notes"]) == ("Interested", 750, "She wants a demo on Friday")


def test_an_attached_file_is_on_the_timeline(signed_in, web_env):
    client = signed_in("agent")
    *_, lead = seed(web_env)
    client.post(f"/app/attachments/lead/{lead.id}", data={"csrf_token": client.csrf, "file": (io.BytesIO(b"hello"), "brief.txt")}, content_type="multipart/form-data")
    page = client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert 'class="tl-attachment"' in page and ">brief.txt</a>" in page


def test_a_companys_timeline_rolls_up_its_contacts_and_deals_paged(signed_in, web_env):
    client = signed_in("admin")
    company, contact, deal, other_company, _lead = seed(web_env)
    with web_env.app.app_context(), db.connection(), db.tenant_context(web_env.tenant("acme")):
        create(Activity, {"kind": "call", "subject": "Own call", "company": company.id})
        create(Activity, {"kind": "meeting", "subject": "Contact meeting", "contact": contact.id})
        create(Note, {"body": "Deal note", "deal": deal.id})
        create(Note, {"body": "Not Globex", "company": other_company.id})
    token = {"Authorization": f"Bearer {web_env.token()}"}
    first = client.get(f"/api/v1/companies/{company.id}/timeline?limit=2", headers=token).get_json()
    second = client.get(f"/api/v1/companies/{company.id}/timeline?limit=2&cursor={first['next_cursor']}", headers=token).get_json()
    summaries = [i["summary"] for i in first["items"] + second["items"]]
    assert sorted(summaries) == ["Contact meeting", "Deal note", "Own call"] and second["next_cursor"] is None
    page = client.get(f"/app/companies/{company.id}").get_data(as_text=True)
    assert "Contact meeting" in page and "Deal note" in page and "Not Globex" not in page


def test_a_mention_in_a_note_notifies_the_colleague_once(signed_in, web_env):
    author = signed_in("agent", email="rita@example.com")
    colleague = signed_in("agent", email="sam.smith@example.com")
    later = signed_in("agent", email="lee@example.com")
    *_, lead = seed(web_env)
    body = "Call back tomorrow, @sam.smith@example.com please. Note to self: @rita@example.com"
    assert author.post(f"/app/leads/{lead.id}/notes", data={"csrf_token": author.csrf, "body": body}).status_code == 302

    def mentions():
        with web_env.app.app_context(), db.connection():
            return [(n.user_id, n.link) for n in Notification.select_all_tenants().where(Notification.kind == "mention").order_by(Notification.id)]

    assert mentions() == [(colleague.user.id, f"/app/leads/{lead.id}")]  # not the author
    assert "mentioned you in a note" in colleague.get("/app/notifications/").get_data(as_text=True)
    token = {"Authorization": f"Bearer {web_env.token()}"}
    with web_env.app.app_context(), db.connection():
        note_id = Note.select_all_tenants().where(Note.lead == lead.id).get().id
    edited = author.patch(f"/api/v1/notes/{note_id}", json={"body": body + " and @lee@example.com"}, headers=token)
    assert edited.status_code == 200, edited.get_json()
    assert mentions() == [(colleague.user.id, f"/app/leads/{lead.id}"), (later.user.id, f"/app/leads/{lead.id}")]  # only the new one
    unknown = author.post("/api/v1/notes", json={"body": "@ghost@example.com", "lead_id": lead.id}, headers=token)
    assert unknown.status_code == 422


def test_the_company_timeline_costs_the_same_queries_however_many_contacts_and_deals(signed_in, web_env):
    from tests.web.test_deals_pages import count_queries

    client = signed_in("admin")
    company, contact, deal, *_ = seed(web_env)
    token = {"Authorization": f"Bearer {web_env.token()}"}

    def queries() -> int:
        with count_queries() as statements:
            assert client.get(f"/api/v1/companies/{company.id}/timeline?limit=10", headers=token).status_code == 200
        return len(statements)

    queries()  # the token's first use records it (once a minute): not part of the count
    few = queries()
    with web_env.app.app_context(), db.connection(), db.tenant_context(web_env.tenant("acme")):
        for n in range(12):
            person = create(Contact, {"first_name": f"P{n}", "last_name": "Globex", "company": company.id})
            create(Activity, {"kind": "call", "subject": f"Call {n}", "contact": person.id})
            create(Note, {"body": f"Deal note {n}", "deal": deal.id})
    assert queries() == few
