"""Merging from the web pages (/app/merge/<entity>/<id>): likely duplicates listed, a
confirmation that says what happens, then the API's merge."""

from __future__ import annotations

from html import unescape

from crmcore.entities import service
from crmcore.entities.models import Lead, Note


def test_a_likely_duplicate_is_chosen_confirmed_and_merged(signed_in, in_tenant):
    boss = signed_in("manager")
    with in_tenant():
        kept = service.create(Lead, {"name": "Grace Hopper", "email": "grace@navy.example"})
        twin = service.create(Lead, {"name": "grace hopper", "phone": "+1 555 0100"})
        service.create(Note, {"body": "Met her", "lead": twin.id})
        service.create(Lead, {"name": "Alan Turing"})
    assert "Merge…" in boss.get(f"/app/leads/{kept.id}").get_data(as_text=True)
    listing = unescape(boss.get(f"/app/merge/lead/{kept.id}").get_data(as_text=True))
    assert f'value="{twin.id}"' in listing and "(same name)" in listing and "Alan Turing" not in listing

    confirm = unescape(boss.post(f"/app/merge/lead/{kept.id}", data={"csrf_token": boss.csrf, "other_id": str(twin.id)}).get_data(as_text=True))
    assert "Merge “grace hopper” into “Grace Hopper”?" in confirm and "cannot be undone" in confirm
    with in_tenant():
        assert Lead.select().count() == 3  # nothing yet
    done = boss.post(f"/app/merge/lead/{kept.id}", data={"csrf_token": boss.csrf, "other_id": str(twin.id), "version": "1", "confirmed": "yes"}, follow_redirects=True)
    assert "Merged “grace hopper” into this lead." in unescape(done.get_data(as_text=True))
    with in_tenant():
        stored = Lead.get_by_id(kept.id)
        assert Lead.get_or_none(Lead.id == twin.id) is None
        assert stored.phone == "+1 555 0100"
        assert Note.get(Note.body == "Met her").lead_id == kept.id


def test_bad_choices_are_explained_and_stale_pages_refused(signed_in, in_tenant):
    boss = signed_in("admin")
    with in_tenant():
        kept = service.create(Lead, {"name": "Grace"})
        other = service.create(Lead, {"name": "Other"})
    for typed, message in [("", "Choose the lead"), (str(kept.id), "cannot be merged into itself"), ("999999", "There is no lead number 999999")]:
        answer = boss.post(f"/app/merge/lead/{kept.id}", data={"csrf_token": boss.csrf, "other_id_typed": typed})
        assert answer.status_code == 422 and message in unescape(answer.get_data(as_text=True))
    with in_tenant():
        service.update(kept, {"phone": "1"})  # someone edits it meanwhile
    stale = boss.post(f"/app/merge/lead/{kept.id}", data={"csrf_token": boss.csrf, "other_id_typed": str(other.id), "version": "1", "confirmed": "yes"}, follow_redirects=True)
    assert "Not merged: this lead changed meanwhile" in unescape(stale.get_data(as_text=True))
    with in_tenant():
        assert Lead.select().count() == 2


def test_only_mergers_and_only_mergeable_kinds(signed_in, in_tenant):
    rep = signed_in("agent")
    with in_tenant():
        lead = service.create(Lead, {"name": "Grace"})
    assert rep.get(f"/app/merge/lead/{lead.id}").status_code == 403
    assert "Merge…" not in rep.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    boss = signed_in("admin")
    assert boss.get(f"/app/merge/deal/{lead.id}").status_code == 404
    assert signed_in("admin", slug="other").get(f"/app/merge/lead/{lead.id}").status_code == 404
