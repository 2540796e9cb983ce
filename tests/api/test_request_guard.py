"""Input the database cannot store is a 422 (or a 404 for an id in a path), never a 500:
each case here was a 500 under fuzzing (issue 21) on SQLite, PostgreSQL or both."""

from __future__ import annotations

import json

import pytest

HUGE = 2**63  # one past the largest 64-bit integer


@pytest.fixture
def api(crm_env):
    crm_env.write_tenant("acme", plugins=["chat", "kanban", "scoring"])
    crm_env.create_app()
    client = crm_env.client("acme")
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {crm_env.token('acme')}"
    return client


def test_ids_past_64_bits_in_paths_are_unknown_records(api):
    for path in (f"/api/v1/leads/{HUGE}", f"/api/v1/notes/{HUGE}", f"/api/v1/pipelines/{HUGE}",
                 f"/api/v1/leads/{HUGE}/export", f"/api/v1/chat/conversations/{HUGE}/messages",
                 f"/api/v1/pipeline/leads/{HUGE}"):
        assert api.get(path).status_code == 404, path
    assert api.get(f"/api/v1/leads/{HUGE - 1}").status_code == 404  # the largest id is looked up


def test_integers_past_64_bits_in_bodies_are_refused(api):
    lead = api.post("/api/v1/leads", json={"name": "Ada"}).json
    tag = api.post("/api/v1/tags", json={"name": "vip"}).json
    answer = api.post(f"/api/v1/tags/{tag['id']}/apply", json={"entity": "lead", "ids": [lead["id"], HUGE]})
    assert answer.status_code == 422
    assert answer.json["errors"]["json"] == {"ids.1": ["Number out of range (64-bit integers only)."]}
    answer = api.post("/api/v1/notes", json={"body": "hi", "lead_id": lead["id"], "mentions": [-HUGE - 1]})
    assert answer.status_code == 422


@pytest.mark.parametrize("bad", ["nul\x00byte", "lone \ud800 surrogate"])
def test_unstorable_text_is_refused_everywhere(api, bad):
    body = json.dumps({"name": bad}, ensure_ascii=True)  # \ud800 travels as an escape, as a client sends it
    answer = api.post("/api/v1/leads", data=body, content_type="application/json")
    assert answer.status_code == 422
    assert list(answer.json["errors"]["json"]) == ["name"]
    if "\x00" in bad:  # a surrogate cannot even be percent-encoded by a client
        assert api.get("/api/v1/leads", query_string={"q": bad}).status_code == 422
    assert api.get("/api/v1/leads").json["items"] == []  # nothing was stored


def test_unstorable_keys_and_nesting_are_refused(api):
    assert api.post("/api/v1/leads", json={"name": "x", "custom": {"a\x00": 1}}).status_code == 422
    deep = '{"name": "x", "custom": ' + "[" * 1000 + '"x"' + "]" * 1000 + "}"
    answer = api.post("/api/v1/leads", data=deep, content_type="application/json")
    assert answer.status_code == 422
    assert "Nested deeper" in json.dumps(answer.json)


def test_public_chat_routes_are_guarded_too(api):
    answer = api.post("/api/v1/chat/public/session", json={"name": "bad\x00name"})
    assert answer.status_code == 422


def test_a_body_larger_than_the_limit_is_refused_before_it_is_read(api, crm_env):
    limit = crm_env.app.config["MAX_CONTENT_LENGTH"]
    answer = api.post("/api/v1/leads", data=b"x" * (limit + 1), content_type="application/json")
    assert answer.status_code == 413


def test_a_refused_export_filter_is_a_json_error_not_a_cut_download(api):
    # SQLite cannot even bind the number (an error before the first row: a JSON 422);
    # PostgreSQL compares it and finds no deal (a complete, empty CSV). Never a download
    # cut short after a 200, never an HTML error page.
    answer = api.get("/api/v1/deals/export.csv", query_string={"owner_id": str(HUGE)})
    if answer.status_code == 200:
        assert answer.mimetype == "text/csv"
        assert answer.get_data(as_text=True).splitlines()[0].startswith("id,")
    else:
        assert (answer.status_code, answer.mimetype) == (422, "application/json")
