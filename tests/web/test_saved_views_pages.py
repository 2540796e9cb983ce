"""Saved views on the list pages (/app/views): save the filters and sort of a list, open
them as a link, update or delete them; personal or shared, as the API has them."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlparse

from crmcore.entities import saved_views, service
from crmcore.entities.models import Lead


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def row_names(html: str) -> list[str]:
    return re.findall(r'<a href="/app/leads/\d+">([^<]+)</a>', html)


def save(client, name: str, query: str, entity: str = "lead", follow_redirects: bool = False, **extra):
    data = {"csrf_token": client.csrf, "entity": entity, "name": name, "query": query, **extra}
    return client.post("/app/views", data=data, follow_redirects=follow_redirects)


def test_a_view_saved_from_the_list_opens_with_its_filters_and_sort(signed_in, in_tenant):
    rep = signed_in("agent")
    with in_tenant():
        for name, status in [("Ann", "new"), ("Bea", "qualified"), ("Cid", "new")]:
            service.create(Lead, {"name": name, "status": status})
    listed = rep.get("/app/leads/?status=new&sort=name&cursor=abc")
    assert 'name="query" value="status=new&amp;sort=name"' in listed.get_data(as_text=True)  # no page in a view

    saved = save(rep, "New ones", "status=new&sort=name")
    assert saved.status_code == 302
    with in_tenant():
        view = saved_views.SavedView.get()
    assert view.query == {"status": ["new"], "sort": ["name"]} and view.owner_id == rep.user.id and not view.shared
    target = urlparse(saved.headers["Location"])
    assert target.path == "/app/leads/" and parse_qs(target.query) == {"status": ["new"], "sort": ["name"], "view": [str(view.id)]}

    page = text(rep.get(saved.headers["Location"]))
    assert "View “New ones” saved." in page
    assert row_names(page) == ["Ann", "Cid"]
    assert re.search(rf'<a href="[^"]*view={view.id}" data-view-id="{view.id}" aria-current="page">New ones</a>', page)
    # the list as the view has it: nothing to update
    assert re.search(r"<button[^>]*disabled>Update “New ones” with these filters", page)


def test_changing_a_filter_of_an_open_view_offers_to_update_it(signed_in, in_tenant):
    rep = signed_in("agent")
    with in_tenant():
        view = saved_views.create(rep.user.id, "lead", "Mine", {"status": ["new"]})
    page = text(rep.get(f"/app/leads/?status=qualified&view={view.id}"))
    assert "Filters changed: save?" in page
    assert not re.search(r"<button[^>]*disabled>Update", page)
    updated = rep.post(f"/app/views/{view.id}/update", data={"csrf_token": rep.csrf, "query": "status=qualified&sort=-name", "version": "1"})
    assert updated.status_code == 302
    with in_tenant():
        assert saved_views.SavedView.get_by_id(view.id).query == {"status": ["qualified"], "sort": ["-name"]}
    stale = rep.post(f"/app/views/{view.id}/update", data={"csrf_token": rep.csrf, "query": "status=new", "version": "1"}, follow_redirects=True)
    assert "Someone changed this view meanwhile" in text(stale)
    with in_tenant():
        assert saved_views.SavedView.get_by_id(view.id).query == {"status": ["qualified"], "sort": ["-name"]}


def test_bad_names_and_filters_are_explained_on_the_list(signed_in, in_tenant):
    rep = signed_in("agent")
    page = text(save(rep, "  ", "status=new", follow_redirects=True))
    assert "The view was not saved. Name: Give the view a name." in page
    page = text(save(rep, "Odd", "status=sleeping&sort=shoe", follow_redirects=True))
    assert "The view was not saved." in page and "Filter status" in page and "Filter sort" in page
    save(rep, "Twice", "")
    page = text(save(rep, "Twice", "status=new", follow_redirects=True))
    assert "You have a view of this name for this list already" in page
    assert rep.post("/app/views", data={"csrf_token": rep.csrf, "entity": "task", "name": "x"}).status_code == 400
    with in_tenant():
        assert [v.name for v in saved_views.SavedView.select()] == ["Twice"]


def test_shared_views_show_to_colleagues_and_only_their_owner_or_a_manager_changes_them(signed_in, in_tenant):
    ann, bob, boss, viewer = signed_in("agent"), signed_in("agent"), signed_in("manager"), signed_in("viewer")
    save(ann, "Team", "status=new", shared="1")
    save(ann, "Private", "status=qualified")
    with in_tenant():
        team = saved_views.SavedView.get(saved_views.SavedView.name == "Team")
        private = saved_views.SavedView.get(saved_views.SavedView.name == "Private")
    page = text(bob.get("/app/leads/"))
    assert "Team<span class=\"view-shared\"> · shared</span>" in page and "Private" not in page
    assert "Delete view" not in text(bob.get(f"/app/leads/?status=new&view={team.id}"))
    assert bob.post(f"/app/views/{team.id}/delete", data={"csrf_token": bob.csrf, "version": "1"}).status_code == 403
    assert bob.post(f"/app/views/{private.id}/delete", data={"csrf_token": bob.csrf, "version": "1"}).status_code == 404
    # a viewer keeps views of their own, and is not offered sharing
    listed = text(viewer.get("/app/leads/"))
    assert 'name="shared"' not in listed
    assert "Sharing a view needs" in text(save(viewer, "Ours", "", shared="1", follow_redirects=True))
    assert boss.post(f"/app/views/{team.id}/delete", data={"csrf_token": boss.csrf, "version": "1"}).status_code == 302
    with in_tenant():
        assert [v.name for v in saved_views.SavedView.select()] == ["Private"]


def test_views_belong_to_their_list_and_tenant(signed_in, in_tenant):
    rep = signed_in("admin")
    save(rep, "Customers", "lifecycle_stage=customer", entity="contact", shared="1")
    assert "Customers" in text(rep.get("/app/contacts/"))
    assert "Customers" not in text(rep.get("/app/leads/"))
    stranger = signed_in("admin", slug="other")
    assert "Customers" not in text(stranger.get("/app/contacts/"))
    with in_tenant():
        view = saved_views.SavedView.get()
    assert stranger.post(f"/app/views/{view.id}/delete", data={"csrf_token": stranger.csrf, "version": "1"}).status_code == 404
