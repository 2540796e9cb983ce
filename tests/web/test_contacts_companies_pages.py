"""The contact and company pages (/app/contacts, /app/companies): the same shared record
pages as the leads (tests/web/test_leads_pages.py covers those in depth), with each
entity's own filters, fields, checks and links."""

from __future__ import annotations

import re
from html import unescape

from crmcore.entities import service
from crmcore.entities.models import Company, Contact, Note
from crmcore.models import User


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def field_error(html: str, name: str) -> str:
    match = re.search(rf'<p class="field-error" id="{re.escape(name)}-error" role="alert">([^<]*)</p>', html)
    return match.group(1) if match else ""


def row_ids(html: str, plural: str) -> list[int]:
    return [int(i) for i in re.findall(rf'<td class="primary-cell"><a href="/app/{plural}/(\d+)">', html)]


def next_link(html: str, plural: str) -> str | None:
    match = re.search(r'<a class="button" href="\?([^"]*)" rel="next">', html)
    return f"/app/{plural}/?" + unescape(match.group(1)) if match else None


def contact_form(client, **fields) -> dict:
    form = {
        "csrf_token": client.csrf,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "",
        "emails": "",
        "phone": "",
        "phones": "",
        "job_title": "",
        "company": "",
        "lifecycle_stage": "lead",
        "owner_id": "",
        "timezone": "",
        "language": "",
        "tags": "",
        "consent_email__present": "1",
        "consent_sms__present": "1",
    }
    form.update(fields)
    return form


def company_form(client, **fields) -> dict:
    form = {"csrf_token": client.csrf, "name": "Acme", "domain": "", "website": "", "industry": "", "size": "", "annual_revenue": "", "owner_id": "", "tags": "", "address": ""}
    form.update(fields)
    return form


# --------------------------------------------------------------------------- contacts


def test_contacts_empty_state_and_nav(signed_in):
    admin = signed_in("admin")
    html = text(admin.get("/app/contacts/"))
    assert "No contacts yet" in html and "import a CSV" in html
    assert '<a href="/app/contacts/" aria-current="page">Contacts</a>' in html
    assert re.search(r'<a href="/app/companies/"\s*>Companies</a>', html) and re.search(r'<a href="/app/leads/"\s*>Leads</a>', html)
    assert html.index(">Leads<") < html.index(">Contacts<") < html.index(">Companies<")


def test_create_contact_with_company_by_name(signed_in, in_tenant):
    admin = signed_in("admin")
    with in_tenant():
        acme = service.create(Company, {"name": "Analytical Engines"})
    html = text(admin.get("/app/contacts/new"))
    assert '<option value="Analytical Engines">' in html  # suggestions for the company input
    response = admin.post("/app/contacts/new", data=contact_form(admin, email="ada@example.com", emails="ada@work.example, ADA@example.com", phone="+44 20 7946 0018", company="analytical engines", consent_email="1", tags="vip", timezone="Europe/London", language="en"))
    assert response.status_code == 302, text(response)
    contact_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with in_tenant():
        contact = Contact.get_by_id(contact_id)
        assert contact.company_id == acme.id and contact.emails == ["ada@work.example"]
        assert contact.consent_email is True and contact.consent_sms is False
    page = text(admin.get(f"/app/contacts/{contact_id}"))
    assert "<h1>Ada Lovelace</h1>" in page
    assert f'<a href="/app/companies/{acme.id}">Analytical Engines</a>' in page
    assert "ada@work.example" in page and "Email: yes · SMS: no" in page

    # the company's page lists the contact and offers "New contact here", prefilled
    company_page = text(admin.get(f"/app/companies/{acme.id}"))
    assert f'href="/app/contacts/{contact_id}">Ada Lovelace</a>' in company_page
    assert f'href="/app/contacts/new?company_id={acme.id}"' in company_page
    assert 'value="Analytical Engines"' in text(admin.get(f"/app/contacts/new?company_id={acme.id}"))

    # edit keeps the company when its name is untouched; emptying it unlinks
    form = text(admin.get(f"/app/contacts/{contact_id}/edit"))
    assert 'value="Analytical Engines"' in form and 'value="ada@work.example"' in form
    assert admin.post(f"/app/contacts/{contact_id}/edit", data=contact_form(admin, email="ada@example.com", company="Analytical Engines", version="1")).status_code == 302
    with in_tenant():
        assert Contact.get_by_id(contact_id).company_id == acme.id
    assert admin.post(f"/app/contacts/{contact_id}/edit", data=contact_form(admin, email="ada@example.com", company="", version="2")).status_code == 302
    with in_tenant():
        assert Contact.get_by_id(contact_id).company_id is None


def test_contact_validation_duplicates_and_stale_edits(signed_in, in_tenant):
    admin = signed_in("admin")
    with in_tenant():
        first = service.create(Contact, {"first_name": "Grace", "email": "grace@example.com", "emails": ["g@navy.example"]})
    response = admin.post("/app/contacts/new", data=contact_form(admin, first_name="", last_name="", email="", company="No Such Co", timezone="Mars/Olympus", language="english!", phone="12"))
    assert response.status_code == 422
    html = text(response)
    assert field_error(html, "company").startswith("No company named “No Such Co”")
    assert field_error(html, "timezone") and field_error(html, "language") and field_error(html, "phone")
    response = admin.post("/app/contacts/new", data=contact_form(admin, first_name="", last_name=""))
    assert field_error(text(response), "last_name") == "A contact needs a first name, a last name or an email."

    # duplicates: the primary email, or a further one of another contact
    for email, emails in (("GRACE@example.com", ""), ("new@example.com", "g@navy.example")):
        response = admin.post("/app/contacts/new", data=contact_form(admin, email=email, emails=emails))
        assert response.status_code == 409
        html = text(response)
        assert "A contact with this email exists." in html
        assert f'<a href="/app/contacts/{first.id}">Grace</a>' in html
    with in_tenant():
        assert Contact.select().count() == 1

    # stale edit
    assert admin.post(f"/app/contacts/{first.id}/edit", data=contact_form(admin, first_name="Grace", last_name="Hopper", email="grace@example.com", version="1")).status_code == 302
    stale = admin.post(f"/app/contacts/{first.id}/edit", data=contact_form(admin, first_name="Old", email="grace@example.com", version="1"))
    assert stale.status_code == 409 and "someone else changed this contact" in text(stale)
    with in_tenant():
        assert Contact.get_by_id(first.id).first_name == "Grace"


def test_contact_filters_sorting_and_pages(signed_in, in_tenant):
    admin = signed_in("admin")
    with in_tenant():
        bob = User.create(email="bob@acme.test", name="Bob", role="agent")
        engines = service.create(Company, {"name": "Analytical Engines"})
        navy = service.create(Company, {"name": "US Navy"})
        ids = []
        for i in range(45):
            data = {"first_name": f"P{i:02d}", "last_name": f"Z{44 - i:02d}", "lifecycle_stage": "customer" if i % 4 == 0 else "lead", "company": engines.id if i < 20 else navy.id, "owner": bob.id if i % 2 else None}
            if i % 9 == 0:
                data["tags"] = ["vip"]
            ids.append(service.create(Contact, data).id)
    assert set(row_ids(text(admin.get("/app/contacts/?lifecycle_stage=customer")), "contacts")) == {ids[i] for i in range(0, 45, 4)}
    assert set(row_ids(text(admin.get(f"/app/contacts/?owner_id={bob.id}")), "contacts")) == {ids[i] for i in range(1, 45, 2)}
    assert set(row_ids(text(admin.get("/app/contacts/?tag=vip")), "contacts")) == {ids[i] for i in range(0, 45, 9)}
    assert set(row_ids(text(admin.get("/app/contacts/?company=navy")), "contacts")) == set(ids[20:])
    by_id = text(admin.get(f"/app/contacts/?company_id={engines.id}"))
    assert set(row_ids(by_id, "contacts")) == set(ids[:20])
    assert '<span class="chip">Analytical Engines' in by_id  # shown as a removable filter
    assert set(row_ids(text(admin.get("/app/contacts/?q=P07")), "contacts")) == {ids[7]}

    # sort by last name (Z44 ... Z00 reversed) across pages of 20
    url, seen = "/app/contacts/?sort=last_name&limit=20", []
    while url:
        html = text(admin.get(url))
        seen += row_ids(html, "contacts")
        url = next_link(html, "contacts")
    assert seen == list(reversed(ids))
    assert row_ids(text(admin.get("/app/contacts/?sort=-last_name&limit=5")), "contacts") == ids[:5]


def test_contact_note_and_bulk_actions(signed_in, in_tenant):
    manager = signed_in("manager")
    with in_tenant():
        ids = [service.create(Contact, {"first_name": f"C{i}"}).id for i in range(3)]
    assert manager.post(f"/app/contacts/{ids[0]}/notes", data={"csrf_token": manager.csrf, "body": "Met at the fair"}).status_code == 302
    assert "Met at the fair" in text(manager.get(f"/app/contacts/{ids[0]}"))
    with in_tenant():
        assert Note.get().contact_id == ids[0]

    manager.post("/app/contacts/bulk", data={"csrf_token": manager.csrf, "action": "tag", "tag": "fair", "ids": [str(i) for i in ids]})
    manager.post("/app/contacts/bulk", data={"csrf_token": manager.csrf, "action": "assign", "owner_id": str(manager.user.id), "ids": [str(ids[0])]})
    confirm = manager.post("/app/contacts/bulk", data={"csrf_token": manager.csrf, "action": "delete", "ids": [str(ids[2])]})
    assert "Delete 1 contact?" in text(confirm)
    manager.post("/app/contacts/bulk", data={"csrf_token": manager.csrf, "action": "delete", "confirmed": "yes", "ids": [str(ids[2])]})
    with in_tenant():
        assert service.tag_names("contact", ids[:2]) == {ids[0]: ["fair"], ids[1]: ["fair"]}
        assert Contact.get_by_id(ids[0]).owner_id == manager.user.id
        assert not Contact.select().where(Contact.id == ids[2]).exists()


def test_contact_and_company_permissions_and_tenants(signed_in, in_tenant):
    with in_tenant():
        company = service.create(Company, {"name": "Mine Co"})
        contact = service.create(Contact, {"first_name": "Mine"})
    with in_tenant("other"):
        their_company = service.create(Company, {"name": "Their Co"})
        their_contact = service.create(Contact, {"first_name": "Theirs"})
    viewer = signed_in("viewer")
    for plural, record, theirs in (("contacts", contact, their_contact), ("companies", company, their_company)):
        html = text(viewer.get(f"/app/{plural}/"))
        assert "New " not in html.split("<h1>")[1].split("</div>")[0] and 'name="ids"' not in html
        page = text(viewer.get(f"/app/{plural}/{record.id}"))
        assert "Edit</a>" not in page and "Delete…" not in page and "Add note" not in page
        assert viewer.get(f"/app/{plural}/new").status_code == 403
        assert viewer.post(f"/app/{plural}/{record.id}/edit", data={"csrf_token": viewer.csrf, "version": "1"}).status_code == 403
        assert viewer.post(f"/app/{plural}/{record.id}/notes", data={"csrf_token": viewer.csrf, "body": "x"}).status_code == 403
        assert viewer.post(f"/app/{plural}/bulk", data={"csrf_token": viewer.csrf, "action": "delete", "ids": [str(record.id)]}).status_code == 403
        assert viewer.get(f"/app/{plural}/{theirs.id}").status_code == 404
        assert viewer.get(f"/app/{plural}/{theirs.id}/edit").status_code in (403, 404)
    admin = signed_in("admin")
    for plural, theirs in (("contacts", their_contact), ("companies", their_company)):
        assert admin.get(f"/app/{plural}/{theirs.id}/edit").status_code == 404
        assert admin.post(f"/app/{plural}/{theirs.id}/notes", data={"csrf_token": admin.csrf, "body": "x"}).status_code == 404
    # a contact cannot be linked to another tenant's company by name either
    response = admin.post("/app/contacts/new", data=contact_form(admin, company="Their Co"))
    assert response.status_code == 422 and field_error(text(response), "company")


# --------------------------------------------------------------------------- companies


def test_company_form_validation_and_detail(signed_in, in_tenant):
    admin = signed_in("admin")
    assert "No companies yet" in text(admin.get("/app/companies/"))
    response = admin.post("/app/companies/new", data=company_form(admin, name="", domain="not a domain", website="ftp://x", size="huge", annual_revenue="-1"))
    assert response.status_code == 422
    html = text(response)
    for name in ("name", "domain", "website", "size", "annual_revenue"):
        assert field_error(html, name), name
    with in_tenant():
        assert Company.select().count() == 0
    response = admin.post("/app/companies/new", data=company_form(admin, name="Analytical Engines", domain="https://www.Engines.example/about", website="https://engines.example", industry="Machinery", size="11-50", annual_revenue="1000000", tags="partner", address="1 Engine St\nLondon"))
    assert response.status_code == 302
    company_id = int(response.headers["Location"].rsplit("/", 1)[1])
    page = text(admin.get(f"/app/companies/{company_id}"))
    assert "<h1>Analytical Engines</h1>" in page and "engines.example" in page and "1,000,000.00" in page
    assert '<span class="tag">partner</span>' in page and "No contacts at this company yet." in page
    html = text(admin.get(f"/app/companies/{company_id}/edit"))
    assert 'name="version" value="1"' in html and '<option value="11-50" selected>' in html
    assert admin.post(f"/app/companies/{company_id}/edit", data=company_form(admin, name="AE Ltd", version="1")).status_code == 302
    stale = admin.post(f"/app/companies/{company_id}/edit", data=company_form(admin, name="Old", version="1"))
    assert stale.status_code == 409 and "someone else changed this company" in text(stale)
    with in_tenant():
        assert Company.get_by_id(company_id).name == "AE Ltd"


def test_company_list_filters_sort_pages_and_bulk(signed_in, in_tenant):
    admin = signed_in("admin")
    with in_tenant():
        ids = [service.create(Company, {"name": f"Co {i:02d}", "industry": "Software" if i % 2 else "Retail", "tags": ["b2b"] if i % 3 == 0 else [], "owner": admin.user.id if i < 5 else None}).id for i in range(33)]
    assert set(row_ids(text(admin.get("/app/companies/?industry=software&limit=100")), "companies")) == {ids[i] for i in range(1, 33, 2)}
    assert set(row_ids(text(admin.get("/app/companies/?tag=b2b")), "companies")) == {ids[i] for i in range(0, 33, 3)}
    assert set(row_ids(text(admin.get(f"/app/companies/?owner_id={admin.user.id}")), "companies")) == set(ids[:5])
    url, seen = "/app/companies/?sort=-name&limit=10", []
    while url:
        html = text(admin.get(url))
        seen += row_ids(html, "companies")
        url = next_link(html, "companies")
    assert seen == list(reversed(ids))

    admin.post("/app/companies/bulk", data={"csrf_token": admin.csrf, "action": "tag", "tag": "key account", "ids": [str(ids[0]), str(ids[1])]})
    confirm = text(admin.post("/app/companies/bulk", data={"csrf_token": admin.csrf, "action": "delete", "ids": [str(ids[0]), str(ids[1])], "next": "/app/companies/?sort=name"}))
    assert "Delete 2 companies?" in confirm and "<li>Co 00</li>" in confirm
    response = admin.post("/app/companies/bulk", data={"csrf_token": admin.csrf, "action": "delete", "confirmed": "yes", "ids": [str(ids[0]), str(ids[1])], "next": "/app/companies/?sort=name"})
    assert response.headers["Location"] == "/app/companies/?sort=name"
    assert "Deleted 2 companies." in text(admin.get(response.headers["Location"]))
    with in_tenant():
        assert Company.select().count() == 31
