"""The board page as the server renders it (the browser tests cover what the script does)."""

from __future__ import annotations

import json
import re


def _board_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="kb-data">(.*?)</script>', html, re.DOTALL)
    assert match, "no board data in the page"
    return json.loads(match.group(1))


def test_page_states(kanban_env, admin):
    client = kanban_env.client("acme")
    kanban_env.login(client, "acme", role="agent")
    empty = client.get("/app/kanban/")
    assert empty.status_code == 200 and all(c["count"] == 0 for c in _board_data(empty.get_data(as_text=True))["columns"])

    deal = admin("POST", "/deals", json={"title": "Globex doomsday device", "value": "125000.00"})
    page = client.get("/app/kanban/")
    html = page.get_data(as_text=True)
    data = _board_data(html)
    assert data["pipeline"]["id"] == deal["pipeline_id"]
    assert data["columns"][0]["cards"][0]["title"] == "Globex doomsday device"
    assert 'data-ws-url="/realtime/ws"' in html and "kanban.js" in html and "Manage stages" not in html

    # Filters come from the URL; a bad one is shown and ignored (never a 500).
    filtered = client.get(f"/app/kanban/?pipeline={deal['pipeline_id']}&q=nothing-like-it")
    assert _board_data(filtered.get_data(as_text=True))["columns"][0]["cards"] == []
    bad = client.get("/app/kanban/?min_value=lots")
    assert bad.status_code == 200 and "This filter was ignored" in bad.get_data(as_text=True)
    assert _board_data(bad.get_data(as_text=True))["columns"][0]["count"] == 1

    assert client.get("/app/kanban/?pipeline=999999").status_code == 404
    assert client.get("/app/kanban/?pipeline=nonsense").status_code == 404
    leads = client.get("/app/kanban/?board=leads")
    assert leads.status_code == 200 and _board_data(leads.get_data(as_text=True))["entity"] == "lead"
    assert client.get("/app/kanban/static/kanban.js").status_code == 200

    admin_client = kanban_env.client("acme")
    kanban_env.login(admin_client, "acme", role="admin")
    html = admin_client.get("/app/kanban/").get_data(as_text=True)
    assert f'href="/app/admin/pipelines/{deal["pipeline_id"]}"' in html  # the core's stage settings
    assert admin_client.get(f"/app/admin/pipelines/{deal['pipeline_id']}").status_code == 200


def test_lead_board_can_be_switched_off(kanban_env):
    kanban_env.write_tenant("acme", name="Acme Ltd", plugins=["kanban"], settings={"kanban": {"lead_board": False}})
    kanban_env.reload()
    client = kanban_env.client("acme")
    kanban_env.login(client, "acme")
    assert client.get("/app/kanban/?board=leads").status_code == 404
    assert 'value="leads"' not in client.get("/app/kanban/").get_data(as_text=True)


def test_no_board_to_show_says_so(kanban_env):
    kanban_env.write_tenant("acme", name="Acme Ltd", plugins=["kanban"], settings={"kanban": {"pipelines": ["No such pipeline"]}})
    kanban_env.reload()
    client = kanban_env.client("acme")
    kanban_env.login(client, "acme")
    html = client.get("/app/kanban/").get_data(as_text=True)
    assert "No pipeline to show" in html and "kanban.js" not in html
