"""The lead pages (/app/leads), the reference record pages: list with search, filters,
sorting, keyset pages and bulk actions; create/edit forms with the API's validation,
duplicates and stale edits; the detail page with its timeline, notes/tasks/calls added
in place, conversion, and the panels plugins contribute (crm_record_panels)."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from html import unescape
from urllib.parse import parse_qs, urlparse

from crmcore import RecordPanel, db, hookimpl
from crmcore.entities import service
from crmcore.entities.models import Activity, Contact, CustomField, Deal, Lead, Note, Task
from crmcore.models import User

# --------------------------------------------------------------------------- helpers


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def field_error(html: str, name: str) -> str:
    """The inline message shown under the input ``name`` (empty if none)."""
    match = re.search(rf'<p class="field-error" id="{re.escape(name)}-error" role="alert">([^<]*)</p>', html)
    return match.group(1) if match else ""


def lead_form(client, **fields) -> dict:
    """A complete lead form as the page sends it."""
    form = {
        "csrf_token": client.csrf,
        "name": "Ada Lovelace",
        "email": "",
        "phone": "",
        "company_name": "",
        "status": "new",
        "priority": "medium",
        "source": "manual",
        "owner_id": "",
        "estimated_value": "",
        "tags": "",
        "budget": "",
        "authority": "",
        "timeline": "",
        "need": "",
    }
    form.update(fields)
    return form


def seed(in_tenant, slug="acme", **data) -> int:
    with in_tenant(slug):
        return service.create(Lead, {"name": "Seeded", **data}).id


def row_ids(html: str) -> list[int]:
    """Lead ids in the list's order (the row links)."""
    return [int(i) for i in re.findall(r'<td class="primary-cell"><a href="/app/leads/(\d+)">', html)]


def next_link(html: str) -> str | None:
    match = re.search(r'<a class="button" href="\?([^"]*)" rel="next">', html)
    return "/app/leads/?" + unescape(match.group(1)) if match else None


def count_queries(database):
    """Count the SQL statements run through ``database`` (a context manager)."""
    import contextlib

    @contextlib.contextmanager
    def counting():
        statements = []
        original = database.execute_sql

        def execute_sql(sql, params=None, *args, **kwargs):
            statements.append(sql)
            return original(sql, params, *args, **kwargs)

        database.execute_sql = execute_sql
        try:
            yield statements
        finally:
            del database.execute_sql

    return counting()


# --------------------------------------------------------------------------- list


def test_empty_list_says_what_to_do(signed_in):
    admin = signed_in("admin")
    html = text(admin.get("/app/leads/"))
    assert "No leads yet" in html and "import a CSV" in html
    assert 'href="/app/leads/new"' in html
    # the nav entry
    assert '<a href="/app/leads/" aria-current="page">Leads</a>' in html


def test_list_shows_rows_linking_to_detail_with_tags_and_owner(signed_in, in_tenant):
    admin = signed_in("admin")
    lead_id = seed(in_tenant, name="Grace Hopper", email="grace@example.com", company_name="Navy", tags=["vip"], owner=admin.user.id)
    html = text(admin.get("/app/leads/"))
    assert row_ids(html) == [lead_id]
    assert "grace@example.com" in html and "Navy" in html
    assert '<span class="tag">vip</span>' in html
    assert admin.user.email in html  # owner (no name: the email)
    assert 'name="ids" value="%d"' % lead_id in html  # bulk checkbox for an admin
    assert "1 shown" in html


def test_search_filters_sort_and_keyset_pages(signed_in, in_tenant, web_env):
    admin = signed_in("admin")
    with in_tenant():
        other_user = User.create(email="bob@acme.test", name="Bob", role="agent")
        ids = []
        for i in range(57):
            data = {"name": f"Lead {i:02d}", "status": "qualified" if i % 3 == 0 else "new", "source": "referral" if i % 2 else "manual", "owner": other_user.id if i < 10 else None}
            if i % 5 == 0:
                data["tags"] = ["hot"]
            ids.append(service.create(Lead, data).id)
        service.create(Lead, {"name": "Needle Person", "email": "needle@haystack.io"})

    # search
    html = text(admin.get("/app/leads/?q=haystack"))
    assert len(row_ids(html)) == 1 and "Needle Person" in html
    # filters, combined
    html = text(admin.get("/app/leads/?status=qualified&source=referral"))
    expected = {ids[i] for i in range(57) if i % 3 == 0 and i % 2}
    assert set(row_ids(html)) == expected
    assert '<option value="qualified" selected>' in html  # the filter form keeps its values
    assert set(row_ids(text(admin.get(f"/app/leads/?owner_id={other_user.id}")))) == set(ids[:10])
    assert len(row_ids(text(admin.get("/app/leads/?owner_id=0&limit=500")))) == 48
    assert set(row_ids(text(admin.get("/app/leads/?tag=hot")))) == {ids[i] for i in range(0, 57, 5)}
    assert "No leads match" in text(admin.get("/app/leads/?q=nothing-like-this"))

    # sorting by clicking the header: name ascending, then descending
    html = text(admin.get("/app/leads/"))
    sort_href = re.search(r'<th scope="col">\s*<a href="\?([^"]*)" class="sort[^"]*">Name', html).group(1)
    assert parse_qs(unescape(sort_href))["sort"] == ["name"]
    ascending = row_ids(text(admin.get("/app/leads/?sort=name&limit=500")))
    descending = row_ids(text(admin.get("/app/leads/?sort=-name&limit=500")))
    assert ascending == list(reversed(descending)) and len(ascending) == 58
    assert ascending[0] == ids[0]

    # keyset pages of 20, following "Next page" to the end, filters and sort kept
    url = "/app/leads/?sort=name&limit=20&source=referral"
    seen, pages = [], 0
    while url:
        html = text(admin.get(url))
        seen += row_ids(html)
        pages += 1
        url = next_link(html)
        if url:
            assert parse_qs(urlparse(url).query)["source"] == ["referral"]
            assert "« First page" in text(admin.get(url))
    assert pages == 2 and len(seen) == len(set(seen)) == 28
    assert seen == sorted(seen, key=lambda i: f"Lead {ids.index(i):02d}")

    # a mangled cursor or unknown filter value is reported, not a crash
    html = text(admin.get("/app/leads/?cursor=garbage"))
    assert "not understood" in html
    html = text(admin.get("/app/leads/?status=won&sort=sideways"))
    assert "not understood" in html and len(row_ids(html)) == 50


def test_list_queries_stay_constant_with_more_rows(signed_in, in_tenant):
    admin = signed_in("admin")
    admin.get("/app/leads/")  # warm up (tenant row, config)

    def queries_for_page() -> int:
        with count_queries(db.database.obj) as statements:
            assert admin.get("/app/leads/").status_code == 200
        return len(statements)

    with in_tenant():
        for i in range(3):
            service.create(Lead, {"name": f"Few {i}", "tags": ["a", "b"]})
    few = queries_for_page()
    with in_tenant():
        for i in range(60):
            service.create(Lead, {"name": f"Many {i}", "tags": ["a", f"t{i}"], "owner": admin.user.id})
    many = queries_for_page()
    assert many == few, (few, many)
    assert many <= 15


# --------------------------------------------------------------------------- create / edit


def test_create_lead_with_tags_owner_and_custom_fields(signed_in, in_tenant):
    admin = signed_in("admin")
    with in_tenant():
        CustomField.create(entity="lead", key="employees", label="Employees", kind="number")
        CustomField.create(entity="lead", key="tier", label="Tier", kind="choice", choices=["gold", "silver"])
        CustomField.create(entity="lead", key="met_on", label="Met on", kind="date")
        CustomField.create(entity="lead", key="newsletter", label="Newsletter", kind="boolean")
        CustomField.create(entity="lead", key="notes_short", label="Short note", kind="text")
    html = text(admin.get("/app/leads/new"))
    assert 'name="custom.employees" type="number"' in html
    assert 'name="custom.met_on" type="date"' in html
    assert '<select id="f-custom.tier" name="custom.tier"' in html and '<option value="gold"' in html
    assert 'name="custom.newsletter" type="checkbox"' in html
    assert f'<option value="{admin.user.id}" selected>' in html  # owned by me by default
    assert 'name="csrf_token"' in html

    response = admin.post("/app/leads/new", data=lead_form(admin, name="Ada", email="ADA@Example.com", phone="+44 20 7946 0018", estimated_value="1200.50", tags="vip, uk ,", owner_id=str(admin.user.id), **{"custom.employees": "250", "custom.tier": "gold", "custom.met_on": "2024-03-01", "custom.newsletter": "1", "custom.newsletter__present": "1", "custom.notes_short": "hi"}))
    assert response.status_code == 302
    lead_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with in_tenant():
        lead = Lead.get_by_id(lead_id)
        assert lead.email == "ada@example.com" and lead.phone == "+442079460018"
        assert lead.owner_id == admin.user.id and lead.estimated_value == Decimal("1200.50")
        assert lead.custom == {"employees": 250, "tier": "gold", "met_on": "2024-03-01", "newsletter": True, "notes_short": "hi"}
        assert service.tag_names("lead", [lead_id])[lead_id] == ["uk", "vip"]
    page = text(admin.get(response.headers["Location"]))
    assert "Lead “Ada” created." in page
    assert "<dt>Employees</dt>" in page and "<dd>250</dd>" in page and "<dd>Yes</dd>" in page

    # editing: an unticked box is False, an emptied input clears the value
    form = lead_form(admin, name="Ada", version="1", **{"custom.employees": "", "custom.tier": "silver", "custom.newsletter__present": "1", "custom.met_on": "2024-03-01", "custom.notes_short": "hi"})
    assert admin.post(f"/app/leads/{lead_id}/edit", data=form).status_code == 302
    with in_tenant():
        assert Lead.get_by_id(lead_id).custom == {"tier": "silver", "newsletter": False, "met_on": "2024-03-01", "notes_short": "hi"}


def test_validation_errors_are_inline_and_nothing_is_stored(signed_in, in_tenant):
    admin = signed_in("admin")
    with in_tenant():
        CustomField.create(entity="lead", key="employees", label="Employees", kind="number", required=True)
    response = admin.post("/app/leads/new", data=lead_form(admin, name="", email="not-an-email", phone="12", status="won", estimated_value="-5", **{"custom.employees": "many"}))
    assert response.status_code == 422
    html = text(response)
    assert "Please correct the highlighted fields." in html
    assert field_error(html, "name") and field_error(html, "email") and field_error(html, "phone")
    assert field_error(html, "status") and field_error(html, "estimated_value")
    assert 'aria-invalid="true" aria-describedby="email-error"' in html
    assert 'value="not-an-email"' in html  # what was typed stays

    # checks that need the database (the API's check_refs): owner, source, custom fields
    response = admin.post("/app/leads/new", data=lead_form(admin, name="Fine", owner_id="99999", source="telepathy", **{"custom.employees": "many"}))
    assert response.status_code == 422
    html = text(response)
    assert field_error(html, "owner_id") == "No such user in this tenant."
    assert "Must be one of" in field_error(html, "source")
    assert field_error(html, "custom.employees") == "Not a valid number."
    response = admin.post("/app/leads/new", data=lead_form(admin, name="Fine"))
    assert field_error(text(response), "custom.employees") == "Missing data for required field."
    with in_tenant():
        assert Lead.select().count() == 0


def test_duplicate_email_shows_a_link_to_the_existing_lead(signed_in, in_tenant):
    admin = signed_in("admin")
    first = seed(in_tenant, name="First", email="dup@example.com")
    response = admin.post("/app/leads/new", data=lead_form(admin, name="Second", email="DUP@example.com"))
    assert response.status_code == 409
    html = text(response)
    assert "A lead with this email exists." in html
    assert f'<a href="/app/leads/{first}">First</a>' in html
    assert field_error(html, "email") == "A lead with this email exists."
    other = seed(in_tenant, name="Other", email="other@example.com")
    response = admin.post(f"/app/leads/{other}/edit", data=lead_form(admin, name="Other", email="dup@example.com", version="1"))
    assert response.status_code == 409 and "A lead with this email exists." in text(response)
    with in_tenant():
        assert Lead.select().count() == 2 and Lead.get_by_id(other).email == "other@example.com"


def test_edit_form_and_stale_edit_is_refused(signed_in, in_tenant):
    admin = signed_in("admin")
    lead_id = seed(in_tenant, name="Ada", email="ada@example.com", tags=["vip"], estimated_value="10.00")
    html = text(admin.get(f"/app/leads/{lead_id}/edit"))
    assert 'name="version" value="1"' in html
    assert 'value="Ada"' in html and 'value="vip"' in html and 'value="10.00"' in html

    response = admin.post(f"/app/leads/{lead_id}/edit", data=lead_form(admin, name="Ada King", email="ada@example.com", tags="vip, math", version="1"))
    assert response.status_code == 302 and response.headers["Location"] == f"/app/leads/{lead_id}"
    with in_tenant():
        lead = Lead.get_by_id(lead_id)
        assert lead.name == "Ada King" and lead.version == 2 and lead.estimated_value is None

    # someone else's tab still holds version 1
    stale = admin.post(f"/app/leads/{lead_id}/edit", data=lead_form(admin, name="Overwrite", version="1"))
    assert stale.status_code == 409
    html = text(stale)
    assert "someone else changed this lead since you opened it" in html
    assert 'value="Overwrite"' in html and 'name="version" value="1"' in html
    with in_tenant():
        assert Lead.get_by_id(lead_id).name == "Ada King"
    # a form without a version is not trusted either
    assert admin.post(f"/app/leads/{lead_id}/edit", data=lead_form(admin, name="No version")).status_code == 409

    # an emptied required field is an error, a field left out of the form stays unchanged
    response = admin.post(f"/app/leads/{lead_id}/edit", data={"csrf_token": admin.csrf, "name": " ", "version": "2"})
    assert response.status_code == 422 and field_error(text(response), "name")
    assert admin.post(f"/app/leads/{lead_id}/edit", data={"csrf_token": admin.csrf, "name": "Ada K.", "version": "2"}).status_code == 302
    with in_tenant():
        lead = Lead.get_by_id(lead_id)
        assert lead.name == "Ada K." and lead.email == "ada@example.com"


def test_csrf_is_required(signed_in):
    admin = signed_in("admin")
    response = admin.post("/app/leads/new", data={"name": "x"})
    assert response.status_code == 400


# --------------------------------------------------------------------------- roles and tenants


def test_permissions_per_role(signed_in, in_tenant):
    lead_id = seed(in_tenant, name="Ada")

    viewer = signed_in("viewer")
    html = text(viewer.get("/app/leads/"))
    assert "Ada" in html
    assert "New lead" not in html and 'name="ids"' not in html and "Assign owner" not in html
    page = text(viewer.get(f"/app/leads/{lead_id}"))
    assert "Edit</a>" not in page and "Delete…" not in page and "Convert…" not in page and "Add note" not in page
    for url in ("/app/leads/new", f"/app/leads/{lead_id}/edit", f"/app/leads/{lead_id}/delete", f"/app/leads/{lead_id}/convert"):
        assert viewer.get(url).status_code == 403, url
    for url, data in (
        ("/app/leads/new", lead_form(viewer)),
        (f"/app/leads/{lead_id}/edit", lead_form(viewer, version="1")),
        (f"/app/leads/{lead_id}/notes", {"body": "x"}),
        (f"/app/leads/{lead_id}/tasks", {"title": "x"}),
        (f"/app/leads/{lead_id}/calls", {"subject": "x"}),
        (f"/app/leads/{lead_id}/delete", {"version": "1"}),
        (f"/app/leads/{lead_id}/convert", {"version": "1"}),
        ("/app/leads/bulk", {"ids": [str(lead_id)], "action": "tag", "tag": "x"}),
    ):
        assert viewer.post(url, data={"csrf_token": viewer.csrf, **data}).status_code == 403, url

    agent = signed_in("agent")
    html = text(agent.get("/app/leads/"))
    assert "New lead" in html and "Assign owner" not in html and 'name="ids"' not in html
    page = text(agent.get(f"/app/leads/{lead_id}"))
    assert "Edit</a>" in page and "Delete…" not in page and "Add note" in page
    assert agent.get(f"/app/leads/{lead_id}/delete").status_code == 403
    assert agent.post("/app/leads/bulk", data={"csrf_token": agent.csrf, "ids": [str(lead_id)], "action": "assign", "owner_id": ""}).status_code == 403
    assert agent.post(f"/app/leads/{lead_id}/notes", data={"csrf_token": agent.csrf, "body": "agent note"}).status_code == 302

    manager = signed_in("manager")
    html = text(manager.get("/app/leads/"))
    assert "Assign owner" in html and "Add tag" in html and "Delete…" in html
    assert "Delete…" in text(manager.get(f"/app/leads/{lead_id}"))
    with in_tenant():
        assert Lead.get_by_id(lead_id).name == "Ada" and Note.select().count() == 1


def test_other_tenants_leads_are_404(signed_in, in_tenant):
    theirs = seed(in_tenant, "other", name="Their lead")
    admin = signed_in("admin")
    for url in (f"/app/leads/{theirs}", f"/app/leads/{theirs}/edit", f"/app/leads/{theirs}/delete", f"/app/leads/{theirs}/convert"):
        assert admin.get(url).status_code == 404, url
    for suffix, data in (("edit", lead_form(admin, version="1")), ("notes", {"body": "x"}), ("delete", {"version": "1"}), ("convert", {"version": "1"})):
        assert admin.post(f"/app/leads/{theirs}/{suffix}", data={"csrf_token": admin.csrf, **data}).status_code == 404
    # bulk with their id changes nothing
    mine = seed(in_tenant, name="Mine")
    response = admin.post("/app/leads/bulk", data={"csrf_token": admin.csrf, "ids": [str(mine), str(theirs)], "action": "tag", "tag": "x", "next": "/app/leads/"})
    assert response.status_code == 302
    assert "no longer exist; nothing was changed" in text(admin.get("/app/leads/"))
    assert "Their lead" not in text(admin.get("/app/leads/"))
    with in_tenant("other"):
        assert Lead.get_by_id(theirs).name == "Their lead" and service.tag_names("lead", [theirs])[theirs] == []
    with in_tenant():
        assert service.tag_names("lead", [mine])[mine] == []


def test_agents_see_own_only_applies_to_pages(web_env, signed_in, in_tenant):
    web_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"agents_see_own_only": True}})
    web_env.reload()
    agent = signed_in("agent")
    mine = seed(in_tenant, name="Mine", owner=agent.user.id)
    nobodys = seed(in_tenant, name="Nobody's")
    with in_tenant():
        someone = User.create(email="x@acme.test", role="agent")
    hidden = seed(in_tenant, name="Someone else's", owner=someone.id)
    assert set(row_ids(text(agent.get("/app/leads/")))) == {mine, nobodys}
    assert agent.get(f"/app/leads/{hidden}").status_code == 404


# --------------------------------------------------------------------------- bulk actions


def test_bulk_assign_tag_and_delete_with_confirmation(signed_in, in_tenant):
    manager = signed_in("manager")
    ids = [seed(in_tenant, name=f"L{i}") for i in range(4)]
    with in_tenant():
        bob = User.create(email="bob@acme.test", name="Bob", role="agent")
    back = "/app/leads/?sort=name"

    response = manager.post("/app/leads/bulk", data={"csrf_token": manager.csrf, "action": "assign", "owner_id": str(bob.id), "ids": [str(i) for i in ids[:3]], "next": back})
    assert response.status_code == 302 and response.headers["Location"] == back
    assert "Assigned 3 leads to Bob" in text(manager.get(back))
    response = manager.post("/app/leads/bulk", data={"csrf_token": manager.csrf, "action": "tag", "tag": " hot  lead ", "ids": [str(i) for i in ids[1:]], "next": "https://evil.example/"})
    assert response.headers["Location"] == "/app/leads/"  # never elsewhere
    assert "Tagged 3 leads with “hot lead”" in text(manager.get("/app/leads/"))
    with in_tenant():
        assert [Lead.get_by_id(i).owner_id for i in ids] == [bob.id] * 3 + [None]
        tags = service.tag_names("lead", ids)
        assert [tags[i] for i in ids] == [[], ["hot lead"], ["hot lead"], ["hot lead"]]
        assert Lead.get_by_id(ids[1]).version == 3  # assign + tag: the ETag moved

    # nothing selected, no tag name, a stranger as owner: told, nothing happens
    assert manager.post("/app/leads/bulk", data={"csrf_token": manager.csrf, "action": "tag", "tag": "x"}).status_code == 302
    assert "Select at least one lead first." in text(manager.get("/app/leads/"))
    manager.post("/app/leads/bulk", data={"csrf_token": manager.csrf, "action": "tag", "tag": " ", "ids": [str(ids[0])]})
    assert "Type a tag name" in text(manager.get("/app/leads/"))
    manager.post("/app/leads/bulk", data={"csrf_token": manager.csrf, "action": "assign", "owner_id": "99999", "ids": [str(ids[0])]})
    assert "Choose an owner from the list." in text(manager.get("/app/leads/"))

    # delete asks first: a confirmation page listing the records, nothing deleted yet
    confirm = manager.post("/app/leads/bulk", data={"csrf_token": manager.csrf, "action": "delete", "ids": [str(ids[0]), str(ids[1])], "next": back})
    assert confirm.status_code == 200
    html = text(confirm)
    assert "Delete 2 leads?" in html and "<li>L0</li>" in html and "<li>L1</li>" in html
    assert 'name="confirmed" value="yes"' in html and f'href="{back}">Cancel' in html
    with in_tenant():
        assert Lead.select().count() == 4
    response = manager.post("/app/leads/bulk", data={"csrf_token": manager.csrf, "action": "delete", "confirmed": "yes", "ids": [str(ids[0]), str(ids[1])], "next": back})
    assert response.status_code == 302
    assert "Deleted 2 leads." in text(manager.get(back))
    with in_tenant():
        assert sorted(lead.id for lead in Lead.select()) == ids[2:]


def test_delete_one_lead_after_confirmation(signed_in, in_tenant):
    admin = signed_in("admin")
    lead_id = seed(in_tenant, name="Doomed")
    html = text(admin.get(f"/app/leads/{lead_id}/delete"))
    assert "Delete 1 lead?" in html and "<li>Doomed</li>" in html and 'name="version" value="1"' in html
    with in_tenant():
        service.update(Lead.get_by_id(lead_id), {"name": "Doomed?"})
    response = admin.post(f"/app/leads/{lead_id}/delete", data={"csrf_token": admin.csrf, "version": "1"})
    assert response.headers["Location"] == f"/app/leads/{lead_id}"
    assert "changed since you asked to delete it" in text(admin.get(response.headers["Location"]))
    response = admin.post(f"/app/leads/{lead_id}/delete", data={"csrf_token": admin.csrf, "version": "2"})
    assert response.headers["Location"] == "/app/leads/"
    assert "Lead “Doomed?” deleted." in text(admin.get("/app/leads/"))
    assert admin.get(f"/app/leads/{lead_id}").status_code == 404


# --------------------------------------------------------------------------- detail page


def test_detail_page_shows_fields_tags_and_timeline_newest_first(signed_in, in_tenant):
    admin = signed_in("admin")
    import datetime as dt

    with in_tenant():
        lead = service.create(Lead, {"name": "Ada", "email": "ada@example.com", "tags": ["vip"], "need": "A better engine", "owner": admin.user.id})
        base = dt.datetime(2024, 1, 1, 12, 0)
        Activity.create(lead=lead, kind="email", direction="in", subject="Asked for prices", occurred_at=base)
        Note.create(lead=lead, body="Old note", created_at=base + dt.timedelta(hours=1), author=admin.user.id)
        Task.create(lead=lead, title="Send the offer", created_at=base + dt.timedelta(hours=2), due_at=base, status="open")
    html = text(admin.get(f"/app/leads/{lead.id}"))
    assert "<h1>Ada</h1>" in html and "ada@example.com" in html and "A better engine" in html
    assert '<span class="tag">vip</span>' in html
    summaries = re.findall(r'<p class="tl-body">([^<]*)</p>', html)
    assert summaries == ["Send the offer", "Old note", "Asked for prices"]
    assert "overdue" in html and "Email · inbound" in html


def test_note_task_and_call_added_in_place(signed_in, in_tenant):
    agent = signed_in("agent")
    lead_id = seed(in_tenant, name="Ada")
    response = agent.post(f"/app/leads/{lead_id}/notes", data={"csrf_token": agent.csrf, "body": "Likes engines", "pinned": "1", "pinned__present": "1"})
    assert response.status_code == 302 and response.headers["Location"] == f"/app/leads/{lead_id}#timeline"
    response = agent.post(f"/app/leads/{lead_id}/tasks", data={"csrf_token": agent.csrf, "title": "Call back", "due_at": "2030-05-01T10:30", "assignee_id": str(agent.user.id), "priority": "high"})
    assert response.status_code == 302
    response = agent.post(f"/app/leads/{lead_id}/calls", data={"csrf_token": agent.csrf, "direction": "out", "subject": "Discovery call", "outcome": "Interested", "duration_minutes": "12.5", "occurred_at": "", "content": "Talked about the engine"})
    assert response.status_code == 302
    html = text(agent.get(f"/app/leads/{lead_id}"))
    assert "Call logged." in html
    summaries = re.findall(r'<p class="tl-body">([^<]*)</p>', html)
    assert set(summaries) == {"Likes engines", "Call back", "Discovery call"}
    assert "Pinned" in html and "Call · outbound" in html
    with in_tenant():
        note = Note.get()
        assert note.pinned and note.lead_id == lead_id and note.author_id == agent.user.id
        task = Task.get()
        assert task.due_at.isoformat() == "2030-05-01T10:30:00" and task.priority == "high" and task.assignee_id == agent.user.id
        call = Activity.get()
        assert call.kind == "call" and call.duration_seconds == 750 and call.user_id == agent.user.id
        assert Lead.get_by_id(lead_id).last_contact_at is not None  # an outbound call touches the lead


def test_in_place_forms_show_errors_inline_and_store_nothing(signed_in, in_tenant):
    agent = signed_in("agent")
    lead_id = seed(in_tenant, name="Ada")
    response = agent.post(f"/app/leads/{lead_id}/notes", data={"csrf_token": agent.csrf, "body": "  "})
    assert response.status_code == 422
    html = text(response)
    assert field_error(html, "body") and "<h1>Ada</h1>" in html
    response = agent.post(f"/app/leads/{lead_id}/notes", data={"csrf_token": agent.csrf, "body": "Ask @nobody@nowhere.example"})
    assert "No user with the email nobody@nowhere.example to mention." in field_error(text(response), "body")
    response = agent.post(f"/app/leads/{lead_id}/tasks", data={"csrf_token": agent.csrf, "title": "", "due_at": "someday"})
    html = text(response)
    assert response.status_code == 422 and field_error(html, "title") and field_error(html, "due_at")
    assert re.search(r'<details class="add-form" open>\s*<summary>Task</summary>', html)
    response = agent.post(f"/app/leads/{lead_id}/calls", data={"csrf_token": agent.csrf, "direction": "sideways", "duration_minutes": "long"})
    html = text(response)
    assert response.status_code == 422 and field_error(html, "direction") and field_error(html, "duration_minutes")
    with in_tenant():
        assert Note.select().count() == Task.select().count() == Activity.select().count() == 0


def test_timeline_pages(signed_in, in_tenant):
    admin = signed_in("admin")
    import datetime as dt

    with in_tenant():
        lead = service.create(Lead, {"name": "Busy"})
        for i in range(30):
            Note.create(lead=lead, body=f"note {i:02d}", created_at=dt.datetime(2024, 1, 1) + dt.timedelta(minutes=i))
    html = text(admin.get(f"/app/leads/{lead.id}"))
    first = re.findall(r'<p class="tl-body">([^<]*)</p>', html)
    assert first[0] == "note 29" and len(first) == 25
    older = re.search(r'<a class="button" href="\?([^"]*)#timeline" rel="next">Older', html).group(1)
    rest = re.findall(r'<p class="tl-body">([^<]*)</p>', text(admin.get(f"/app/leads/{lead.id}?{unescape(older)}")))
    assert rest == [f"note {i:02d}" for i in range(4, -1, -1)]
    assert admin.get(f"/app/leads/{lead.id}?timeline=junk").status_code == 200


# --------------------------------------------------------------------------- conversion


def test_convert_lead_from_the_page(signed_in, in_tenant):
    agent = signed_in("agent")
    lead_id = seed(in_tenant, name="Ada Lovelace", email="ada@example.com", company_name="Analytical Engines", estimated_value="5000.00")
    page = text(agent.get(f"/app/leads/{lead_id}"))
    assert f'href="/app/leads/{lead_id}/convert">Convert…' in page
    form = text(agent.get(f"/app/leads/{lead_id}/convert"))
    assert 'value="Ada Lovelace deal"' in form and 'value="5000.00"' in form and 'name="version" value="1"' in form

    bad = agent.post(f"/app/leads/{lead_id}/convert", data={"csrf_token": agent.csrf, "version": "1", "create_deal": "1", "create_deal__present": "1", "deal.title": "", "deal.value": "-3"})
    assert bad.status_code == 422
    assert "Must be greater than or equal to 0" in field_error(text(bad), "deal.value")
    with in_tenant():
        assert Contact.select().count() == 0 and Lead.get_by_id(lead_id).status == "new"

    response = agent.post(f"/app/leads/{lead_id}/convert", data={"csrf_token": agent.csrf, "version": "1", "create_deal": "1", "create_deal__present": "1", "deal.title": "Engine deal", "deal.value": "7000"})
    assert response.status_code == 302
    with in_tenant():
        lead = Lead.get_by_id(lead_id)
        contact = Contact.get()
        deal = Deal.get()
        assert lead.status == "converted" and lead.contact_id == contact.id
        assert deal.title == "Engine deal" and deal.value == Decimal("7000") and deal.contact_id == contact.id
    location = response.headers["Location"]
    assert location in (f"/app/deals/{deal.id}", f"/app/contacts/{contact.id}")
    assert "Lead “Ada Lovelace” converted: contact created, company created, deal “Engine deal” created." in text(agent.get(f"/app/contacts/{contact.id}"))

    page = text(agent.get(f"/app/leads/{lead_id}"))
    assert "Convert…" not in page and f'Contact: <a href="/app/contacts/{contact.id}">Ada Lovelace</a>' in page
    assert f'Company: <a href="/app/companies/{contact.company_id}">Analytical Engines</a>' in page
    again = agent.post(f"/app/leads/{lead_id}/convert", data={"csrf_token": agent.csrf, "version": str(lead.version)})
    assert again.status_code == 302 and "converted already" in text(agent.get(again.headers["Location"]))


def test_convert_without_deal_and_stale(signed_in, in_tenant):
    admin = signed_in("admin")
    lead_id = seed(in_tenant, name="Grace")
    with in_tenant():
        service.update(Lead.get_by_id(lead_id), {"status": "qualified"})
    stale = admin.post(f"/app/leads/{lead_id}/convert", data={"csrf_token": admin.csrf, "version": "1", "create_deal__present": "1"})
    assert stale.status_code == 422 and "Someone changed this lead" in text(stale)
    response = admin.post(f"/app/leads/{lead_id}/convert", data={"csrf_token": admin.csrf, "version": "2", "create_deal__present": "1"})
    with in_tenant():
        contact = Contact.get()
        assert Deal.select().count() == 0 and contact.first_name == "Grace"
    assert response.headers["Location"] == f"/app/contacts/{contact.id}"


# --------------------------------------------------------------------------- plugin panels


def test_hook_crm_record_panels(web_env, signed_in, in_tenant, register_plugin, caplog):
    seen = []

    def broken():
        raise RuntimeError("panel bug")

    class Panels:
        @hookimpl
        def crm_record_panels(self, tenant, user, entity, record):
            seen.append((tenant.slug, user.role, entity, record.id))
            if entity != "lead":
                return []
            return [
                RecordPanel(name="second", title="Second panel", render=lambda: f"<p class='p2'>lead {record.id}</p>", order=20),
                RecordPanel(name="first", title="First panel", render=lambda: "<p class='p1'>first</p>", order=10),
                RecordPanel(name="broken", title="Broken panel", render=broken, order=30),
            ]

    class Raising:
        @hookimpl
        def crm_record_panels(self, tenant, user, entity, record):
            raise RuntimeError("hook bug")

    class Disabled:
        @hookimpl
        def crm_record_panels(self, tenant, user, entity, record):
            return [RecordPanel(name="off", title="Not for this tenant", render=lambda: "<p>off</p>")]

    register_plugin(Panels(), name="panels")
    register_plugin(Raising(), name="raising")
    register_plugin(Disabled(), name="disabled", always_on=False)
    viewer = signed_in("viewer")
    lead_id = seed(in_tenant, name="Ada")
    caplog.set_level(logging.ERROR)
    response = viewer.get(f"/app/leads/{lead_id}")
    assert response.status_code == 200
    html = text(response)
    assert html.index("First panel") < html.index("Second panel") < html.index("Broken panel")
    assert f"<p class='p2'>lead {lead_id}</p>" in html
    assert "This panel could not be shown." in html
    assert "Not for this tenant" not in html
    assert ("acme", "viewer", "lead", lead_id) in seen
    assert "panel bug" in caplog.text and "hook bug" in caplog.text
    assert any("'panels'" in r.getMessage() for r in caplog.records) and any("'raising'" in r.getMessage() for r in caplog.records)

    # contacts and companies ask too, with their entity name
    with in_tenant():
        contact = service.create(Contact, {"first_name": "Grace"})
    assert viewer.get(f"/app/contacts/{contact.id}").status_code == 200
    assert ("acme", "viewer", "contact", contact.id) in seen

    # the tenant turns the plugin on: its panel shows
    web_env.write_tenant("acme", name="Acme Ltd", plugins=["disabled"])
    web_env.reload()
    assert "Not for this tenant" in text(viewer.get(f"/app/leads/{lead_id}"))
