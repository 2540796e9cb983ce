"""/api/v1/notes and /api/v1/tasks end to end: CRUD, @mentions, completion, filters
(`mine`, due dates, links), ETags, roles, tenant isolation."""

from __future__ import annotations

from tests.api.test_activities import in_tenant, lead, make_user, user_api


def note(api, **data):
    response = api.post("/api/v1/notes", json={"body": "Remember the budget", **data})
    assert response.status_code == 201, response.json
    return response.json


def task(api, **data):
    response = api.post("/api/v1/tasks", json={"title": "Call back", **data})
    assert response.status_code == 201, response.json
    return response.json


# --------------------------------------------------------------------------- notes


def test_note_crud_etag_and_author(api_env):
    api, me = user_api(api_env, "admin", email="ada@acme.test")
    ld = lead(api)
    created = note(api, lead_id=ld["id"], pinned=True)
    assert created["author_id"] == me and created["pinned"] is True and created["mentions"] == []
    got = api.get(f"/api/v1/notes/{created['id']}")
    assert got.status_code == 200 and got.json["body"] == "Remember the budget"
    etag = got.headers["ETag"]
    changed = api.patch(f"/api/v1/notes/{created['id']}", json={"body": "Budget is 10k", "pinned": False}, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.json["body"] == "Budget is 10k" and changed.json["pinned"] is False
    assert api.patch(f"/api/v1/notes/{created['id']}", json={"body": "stale"}, headers={"If-Match": etag}).status_code == 412
    assert api.delete(f"/api/v1/notes/{created['id']}", headers={"If-Match": etag}).status_code == 412
    assert api.delete(f"/api/v1/notes/{created['id']}").status_code == 204
    assert api.get(f"/api/v1/notes/{created['id']}").status_code == 404


def test_mentions_by_email_and_id(api, api_env):
    with in_tenant(api_env):
        bob, eve, cat = make_user("bob@acme.test"), make_user("eve@acme.test"), make_user("cat@acme.test")
    ld = lead(api)
    created = note(api, lead_id=ld["id"], body="Hi @Bob@acme.test, see mail@acme.test. Also @eve@acme.test.", mentions=[cat.id])
    assert created["mentions"] == sorted([bob.id, eve.id, cat.id])
    # A new body recomputes the body's mentions and keeps the explicit ones.
    changed = api.patch(f"/api/v1/notes/{created['id']}", json={"body": "Only @eve@acme.test now"})
    assert changed.json["mentions"] == sorted([eve.id, cat.id])
    changed = api.patch(f"/api/v1/notes/{created['id']}", json={"mentions": []})
    assert changed.json["mentions"] == [eve.id]

    unknown = api.post("/api/v1/notes", json={"lead_id": ld["id"], "body": "Ask @nobody@acme.test", "mentions": [cat.id, 9999]})
    assert unknown.status_code == 422
    assert set(unknown.json["errors"]["json"]) == {"body", "mentions"}
    assert "nobody@acme.test" in unknown.json["errors"]["json"]["body"][0]
    # A user of another tenant cannot be mentioned.
    with in_tenant(api_env, "other"):
        outsider = make_user("out@other.test")
    assert api.post("/api/v1/notes", json={"lead_id": ld["id"], "body": "x", "mentions": [outsider.id]}).status_code == 422
    assert api.post("/api/v1/notes", json={"lead_id": ld["id"], "body": "x @out@other.test"}).status_code == 422


def test_note_validation_filters_and_pages(api, as_role):
    ld, other_lead = lead(api), lead(api, name="Other", email="o@example.com")
    theirs = lead(as_role("admin", "other"), name="Theirs")
    assert api.post("/api/v1/notes", json={"body": ""}).status_code == 422
    no_link = api.post("/api/v1/notes", json={"body": "floating"})
    assert no_link.status_code == 422 and "_schema" in no_link.json["errors"]["json"]
    assert set(api.post("/api/v1/notes", json={"body": "x", "lead_id": theirs["id"]}).json["errors"]["json"]) == {"lead_id"}
    made = [note(api, lead_id=ld["id"] if i % 2 else other_lead["id"], body=f"Note {i}", pinned=i == 3) for i in range(9)]
    assert [n["id"] for n in api.get("/api/v1/notes?pinned=true").json["items"]] == [made[3]["id"]]
    assert len(api.get(f"/api/v1/notes?lead_id={ld['id']}").json["items"]) == 4
    assert api.get(f"/api/v1/notes?author_id={made[0]['id'] + 500}").json["items"] == []
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/notes?limit=4&sort=created_at" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [n["body"] for n in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"Note {i}" for i in range(9)]


def test_notes_roles_401_and_other_tenant(api, as_role, api_env):
    created = note(api, lead_id=lead(api)["id"])
    viewer, agent, other = as_role("viewer"), as_role("agent"), as_role("admin", "other")
    assert viewer.get(f"/api/v1/notes/{created['id']}").status_code == 200
    assert viewer.post("/api/v1/notes", json={"body": "x", "lead_id": created["lead_id"]}).status_code == 403
    assert agent.patch(f"/api/v1/notes/{created['id']}", json={"pinned": True}).status_code == 200
    assert agent.delete(f"/api/v1/notes/{created['id']}").status_code == 403
    assert api_env.client("acme").get("/api/v1/notes").status_code == 401
    for method in ("get", "patch", "delete"):
        assert getattr(other, method)(f"/api/v1/notes/{created['id']}").status_code == 404
    assert other.get("/api/v1/notes").json["items"] == []


# --------------------------------------------------------------------------- tasks


def test_task_crud_completion_and_default_assignee(api_env):
    api, me = user_api(api_env, "manager")
    plain = task(api)  # no link: a personal to-do
    assert plain["assignee_id"] == me and plain["status"] == "open" and plain["completed_at"] is None
    assert plain["lead_id"] is None and plain["priority"] == "medium"
    ld = lead(api)
    linked = task(api, lead_id=ld["id"], due_at="2024-06-01T17:00:00+02:00", reminder_at="2024-06-01T09:00:00Z", priority="high", assignee_id=None)
    assert linked["due_at"].startswith("2024-06-01T15:00:00") and linked["assignee_id"] is None

    etag = api.get(f"/api/v1/tasks/{linked['id']}").headers["ETag"]
    done = api.patch(f"/api/v1/tasks/{linked['id']}", json={"status": "done"}, headers={"If-Match": etag})
    assert done.status_code == 200 and done.json["completed_at"] is not None
    assert api.patch(f"/api/v1/tasks/{linked['id']}", json={"title": "stale"}, headers={"If-Match": etag}).status_code == 412
    again = api.patch(f"/api/v1/tasks/{linked['id']}", json={"status": "done", "title": "Called"})
    assert again.json["completed_at"] == done.json["completed_at"]  # already done: not re-stamped
    reopened = api.patch(f"/api/v1/tasks/{linked['id']}", json={"status": "open"})
    assert reopened.json["completed_at"] is None
    born_done = task(api, title="Already did it", status="done")
    assert born_done["completed_at"] is not None

    assert api.delete(f"/api/v1/tasks/{linked['id']}").status_code == 204
    assert api.get(f"/api/v1/tasks/{linked['id']}").status_code == 404


def test_task_validation(api, as_role):
    theirs = lead(as_role("admin", "other"), name="Theirs")
    response = api.post("/api/v1/tasks", json={"title": "", "status": "maybe", "priority": "urgent", "due_at": "soon"})
    assert response.status_code == 422
    assert {"title", "status", "priority", "due_at"} <= set(response.json["errors"]["json"])
    refs = api.post("/api/v1/tasks", json={"title": "x", "assignee_id": 4242, "lead_id": theirs["id"], "deal_id": 77})
    assert refs.status_code == 422 and set(refs.json["errors"]["json"]) == {"assignee_id", "lead_id", "deal_id"}


def test_task_filters_mine_due_status(api, api_env):
    me_api, me = user_api(api_env, "agent")
    ld = lead(api)
    task(me_api, title="Mine 1", due_at="2024-01-10T10:00:00Z")
    task(me_api, title="Mine 2", due_at="2024-01-20T10:00:00Z", status="done")
    task(api, title="Unassigned", lead_id=ld["id"], due_at="2024-01-15T10:00:00Z")
    task(api, title="Assigned to me by admin", assignee_id=me, lead_id=ld["id"])

    def titles(query, who=api):
        response = who.get("/api/v1/tasks" + query)
        assert response.status_code == 200, response.json
        return sorted(t["title"] for t in response.json["items"])

    assert titles("?mine=true", me_api) == ["Assigned to me by admin", "Mine 1", "Mine 2"]
    assert titles("?mine=true&status=open", me_api) == ["Assigned to me by admin", "Mine 1"]
    assert titles(f"?assignee_id={me}&status=done") == ["Mine 2"]
    assert titles("?assignee_id=0") == ["Unassigned"]
    assert titles(f"?lead_id={ld['id']}") == ["Assigned to me by admin", "Unassigned"]
    assert titles("?due_before=2024-01-15T10:00:00Z") == ["Mine 1"]
    assert titles("?due_after=2024-01-15T10:00:00Z") == ["Mine 2", "Unassigned"]
    assert titles("?due_after=2024-01-01T00:00:00Z&due_before=2024-02-01T00:00:00Z&status=open&status=cancelled") == ["Mine 1", "Unassigned"]
    # A token that belongs to no user has no "mine".
    assert api.get("/api/v1/tasks?mine=true").status_code == 422
    assert api.get("/api/v1/tasks?status=maybe").status_code == 422
    first = api.get("/api/v1/tasks?limit=3").json
    rest = api.get(f"/api/v1/tasks?limit=3&cursor={first['next_cursor']}").json
    assert len(first["items"]) == 3 and len(rest["items"]) == 1 and rest["next_cursor"] is None


def test_tasks_roles_401_and_other_tenant(api, as_role, api_env):
    created = task(api, title="Ours")
    viewer, agent, other = as_role("viewer"), as_role("agent"), as_role("admin", "other")
    assert viewer.get("/api/v1/tasks").status_code == 200
    assert viewer.patch(f"/api/v1/tasks/{created['id']}", json={"status": "done"}).status_code == 403
    assert agent.patch(f"/api/v1/tasks/{created['id']}", json={"status": "done"}).status_code == 200
    assert agent.delete(f"/api/v1/tasks/{created['id']}").status_code == 403
    assert api_env.client("acme").get("/api/v1/tasks").status_code == 401
    for method in ("get", "patch", "delete"):
        assert getattr(other, method)(f"/api/v1/tasks/{created['id']}").status_code == 404
    assert other.get("/api/v1/tasks").json["items"] == []
    assert api.get(f"/api/v1/tasks/{created['id']}").json["title"] == "Ours"
