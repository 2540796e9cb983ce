"""The board API: /api/v1/pipeline/... (boards, columns, moves, metrics, the lead board)."""

from __future__ import annotations

import re
from typing import Any

from crmcore import db
from crmcore.entities.models import AuditEntry, DealStageChange
from tests.plugins.kanban.conftest import Api, count_queries, user_token


def _deals(admin: Api, pipeline: dict[str, Any], spec: dict[str, int], **extra: Any) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for name, n in spec.items():
        for i in range(n):
            deal = admin("POST", "/deals", json={"title": f"{name} deal {i}", "value": f"{1000 * (i + 1)}.00", "stage_id": pipeline["by_name"][name]["id"], **extra})
            out.setdefault(name, []).append(deal["id"])
    return out


def _column(board: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in board["columns"] if c["name"] == name)


def test_board_columns_totals_and_cards(admin, pipeline):
    _deals(admin, pipeline, {"Qualified": 3, "Proposal": 1})
    board = admin("GET", f"/pipeline/boards/{pipeline['id']}")
    assert [c["name"] for c in board["columns"]] == [s["name"] for s in pipeline["stages"]]
    qualified = _column(board, "Qualified")
    assert qualified["count"] == 3
    assert qualified["value"] == "6000.00"
    assert qualified["weighted_value"] == "1500.00"  # 25 %
    assert qualified["colour"] == pipeline["by_name"]["Qualified"]["colour"]
    assert [c["title"] for c in qualified["cards"]] == ["Qualified deal 0", "Qualified deal 1", "Qualified deal 2"]
    card = qualified["cards"][0]
    assert card["days_in_stage"] == 0 and card["overdue"] is False and card["url"] == f"/app/deals/{card['id']}"
    assert _column(board, "Lead")["cards"][0]["title"] == "Seed"
    assert _column(board, "Closed Won")["count"] == 0 and _column(board, "Closed Won")["value"] == "0.00"



def test_board_opens_in_a_constant_number_of_queries(admin, pipeline, kanban_env):
    company = admin("POST", "/companies", json={"name": "Globex"})
    contact = admin("POST", "/contacts", json={"first_name": "Hank", "last_name": "Scorpio"})
    linked = {"tags": ["hot"], "owner_id": admin.user.id, "company_id": company["id"], "contact_id": contact["id"]}
    _deals(admin, pipeline, {"Qualified": 1}, **linked)
    url = f"/pipeline/boards/{pipeline['id']}?limit=5"

    def queries() -> int:
        with count_queries() as statements:
            admin("GET", url)
        return len(statements)

    few = queries()
    # Many more deals in several columns, each card with tags, owner, company, contact.
    _deals(admin, pipeline, {"Lead": 8, "Proposal": 8, "Negotiation": 8, "Closed Won": 8}, **linked)
    assert queries() == few
    board = admin("GET", url)
    proposal = _column(board, "Proposal")
    assert proposal["count"] == 8 and len(proposal["cards"]) == 5 and proposal["next_cursor"]
    card = proposal["cards"][0]
    assert card["tags"] == ["hot"] and card["company"]["name"] == "Globex" and card["contact"]["name"] == "Hank Scorpio"
    assert card["owner"] == {"id": admin.user.id, "name": "Ada Admin", "initials": "AA"}


def test_load_more_pages_through_a_column(admin, pipeline):
    ids = _deals(admin, pipeline, {"Proposal": 7})["Proposal"]
    stage = pipeline["by_name"]["Proposal"]["id"]
    board = admin("GET", f"/pipeline/boards/{pipeline['id']}?limit=3")
    seen = [c["id"] for c in _column(board, "Proposal")["cards"]]
    cursor = _column(board, "Proposal")["next_cursor"]
    while cursor:
        page = admin("GET", f"/pipeline/boards/{pipeline['id']}/columns/{stage}/cards?limit=3&cursor={cursor}")
        seen += [c["id"] for c in page["cards"]]
        cursor = page["next_cursor"]
    assert seen == ids
    admin("GET", f"/pipeline/boards/{pipeline['id']}/columns/{stage}/cards?cursor=nonsense", status=422)
    admin("GET", f"/pipeline/boards/{pipeline['id']}/columns/999999/cards", status=404)


def test_filters(admin, pipeline, kanban_env):
    other, _token = user_token(kanban_env, "acme", "Otto Other", role="agent")
    _deals(admin, pipeline, {"Qualified": 2}, owner_id=admin.user.id, tags=["vip"])
    _deals(admin, pipeline, {"Qualified": 3}, owner_id=other.id)
    base = f"/pipeline/boards/{pipeline['id']}"
    assert _column(admin("GET", base + "?mine=true"), "Qualified")["count"] == 2
    assert _column(admin("GET", base + f"?owner_id={other.id}"), "Qualified")["count"] == 3
    assert _column(admin("GET", base + "?tag=vip"), "Qualified")["count"] == 2
    assert _column(admin("GET", base + "?min_value=2000&max_value=2000"), "Qualified")["count"] == 2
    assert [c["title"] for c in _column(admin("GET", base + "?q=deal 2"), "Qualified")["cards"]] == ["Qualified deal 2"]
    errors = admin("GET", base + "?min_value=5&max_value=1", status=422)["errors"]["query"]
    assert "max_value" in errors


def test_move_card_between_and_within_columns(admin, pipeline, captured_signals):
    ids = _deals(admin, pipeline, {"Qualified": 1, "Proposal": 3})
    deal, proposal = ids["Qualified"][0], ids["Proposal"]
    target = pipeline["by_name"]["Proposal"]["id"]
    with captured_signals("deal_stage_changed") as sent:
        card = admin("PUT", f"/pipeline/cards/{deal}", json={"stage_id": target, "after_id": proposal[0]})
    assert card["stage_id"] == target and card["probability"] == 50 and card["version"] == 2
    assert admin.last.headers["ETag"] == f'"{deal}-2"'
    assert [(name, data["from_stage_id"], data["to_stage_id"]) for name, _sender, data in sent] == [("deal_stage_changed", pipeline["by_name"]["Qualified"]["id"], target)]
    board = admin("GET", f"/pipeline/boards/{pipeline['id']}")
    assert [c["id"] for c in _column(board, "Proposal")["cards"]] == [proposal[0], deal, proposal[1], proposal[2]]
    assert _column(board, "Qualified")["count"] == 0
    # Within the column: to the top, no stage change.
    with captured_signals("deal_stage_changed") as sent:
        admin("PUT", f"/pipeline/cards/{deal}", json={"stage_id": target, "before_id": proposal[0]})
    assert sent == []
    board = admin("GET", f"/pipeline/boards/{pipeline['id']}")
    assert [c["id"] for c in _column(board, "Proposal")["cards"]] == [deal, proposal[0], proposal[1], proposal[2]]
    with db.database.connection_context():
        from crmcore.db import tenant_context

        with tenant_context(admin.client.application.extensions["crm"].tenant("acme")):
            history = list(DealStageChange.select().where(DealStageChange.deal == deal))
            assert [(h.from_stage_id, h.to_stage_id, h.changed_by_id) for h in history] == [(pipeline["by_name"]["Qualified"]["id"], target, admin.user.id)]
            assert AuditEntry.select().where((AuditEntry.entity == "deal") & (AuditEntry.entity_id == deal) & (AuditEntry.action == "stage_change")).count() == 1


def test_move_refusals(admin, pipeline, kanban_env):
    deal = _deals(admin, pipeline, {"Qualified": 1})["Qualified"][0]
    stages = pipeline["by_name"]
    url = f"/pipeline/cards/{deal}"
    # Stale version, by If-Match and by body.
    admin("PUT", url, json={"stage_id": stages["Proposal"]["id"]}, headers={"If-Match": f'"{deal}-7"'}, status=412)
    admin("PUT", url, json={"stage_id": stages["Proposal"]["id"], "version": 9}, status=412)
    # Bad stage: unknown, another pipeline's.
    assert "stage_id" in admin("PUT", url, json={"stage_id": 999999}, status=422)["errors"]["json"]
    other_pipeline = admin("POST", "/pipelines", json={"name": "Renewals", "stages": [{"name": "Open"}]})
    assert "stage_id" in admin("PUT", url, json={"stage_id": other_pipeline["stages"][0]["id"]}, status=422)["errors"]["json"]
    assert "stage_id" in admin("PUT", url, json={}, status=422)["errors"]["json"]
    # A lost stage needs a reason.
    lost = stages["Closed Lost"]["id"]
    assert "lost_reason" in admin("PUT", url, json={"stage_id": lost}, status=422)["errors"]["json"]
    assert "lost_reason" in admin("PUT", url, json={"stage_id": lost, "lost_reason": "  "}, status=422)["errors"]["json"]
    assert "before_id" in admin("PUT", url, json={"stage_id": lost, "before_id": 424242, "lost_reason": "x"}, status=422)["errors"]["json"]
    # Nothing was written by any of them.
    assert admin("GET", f"/deals/{deal}")["version"] == 1
    card = admin("PUT", url, json={"stage_id": lost, "lost_reason": "Chose a competitor", "version": 1})
    assert card["status"] == "lost" and card["lost_reason"] == "Chose a competitor" and card["probability"] == 0
    assert admin("GET", f"/deals/{deal}")["closed_at"] is not None
    # Won sets closed_at; back to open clears it and the reason.
    card = admin("PUT", url, json={"stage_id": stages["Proposal"]["id"]})
    assert card["lost_reason"] is None and admin("GET", f"/deals/{deal}")["closed_at"] is None
    # Another tenant's caller: 404; a viewer: 403; no token: 401.
    _user, other_token = user_token(kanban_env, "other", "Olga Other")
    Api(kanban_env, "other", other_token)("PUT", url, json={"stage_id": stages["Proposal"]["id"]}, status=404)
    Api(kanban_env, "other", other_token)("GET", url, status=404)
    _viewer, viewer_token = user_token(kanban_env, "acme", "Vic Viewer", role="viewer")
    Api(kanban_env, "acme", viewer_token)("PUT", url, json={"stage_id": stages["Lead"]["id"]}, status=403)
    assert kanban_env.client("acme").put(f"/api/v1{url}", json={"stage_id": stages["Lead"]["id"]}).status_code == 401


def test_positions_are_respaced_when_a_gap_runs_out(admin, pipeline):
    ids = _deals(admin, pipeline, {"Proposal": 3})["Proposal"]
    stage = pipeline["by_name"]["Proposal"]["id"]
    # Moving cards into the same gap halves it each time; after ~50 moves doubles cannot
    # tell the neighbours apart, and the board must still keep the order asked for.
    for _ in range(60):
        admin("PUT", f"/pipeline/cards/{ids[2]}", json={"stage_id": stage, "after_id": ids[0]})
        admin("PUT", f"/pipeline/cards/{ids[1]}", json={"stage_id": stage, "after_id": ids[0]})
    board = admin("GET", f"/pipeline/boards/{pipeline['id']}")
    assert [c["id"] for c in _column(board, "Proposal")["cards"]] == [ids[0], ids[1], ids[2]]


def test_card_get_says_whether_it_matches_the_filters(admin, pipeline):
    deal = _deals(admin, pipeline, {"Qualified": 1}, tags=["vip"])["Qualified"][0]
    assert admin("GET", f"/pipeline/cards/{deal}?tag=vip")["matches"] is True
    assert admin("GET", f"/pipeline/cards/{deal}?tag=other")["matches"] is False


def test_metrics(admin, pipeline):
    ids = _deals(admin, pipeline, {"Lead": 3, "Qualified": 1})
    stages = pipeline["by_name"]
    # Two of the four Lead deals (incl. Seed) move on; one of those reaches Proposal.
    admin("PUT", f"/pipeline/cards/{ids['Lead'][0]}", json={"stage_id": stages["Qualified"]["id"]})
    admin("PUT", f"/pipeline/cards/{ids['Lead'][1]}", json={"stage_id": stages["Proposal"]["id"]})
    admin("PUT", f"/pipeline/cards/{ids['Lead'][2]}", json={"stage_id": stages["Closed Lost"]["id"], "lost_reason": "Budget"})
    metrics = {m["name"]: m for m in admin("GET", f"/pipeline/boards/{pipeline['id']}/metrics")["stages"]}
    assert metrics["Lead"]["count"] == 1 and metrics["Qualified"]["count"] == 2 and metrics["Proposal"]["count"] == 1
    assert metrics["Qualified"]["value"] == "2000.00" and metrics["Qualified"]["weighted_value"] == "500.00"
    # Reached Lead or beyond: 5 deals (Seed, 3 leads, 1 qualified; the lost one counts: it
    # was in Lead). Beyond Lead: the 2 moved + the qualified one = 3.
    assert metrics["Lead"]["conversion_to_next"] == 0.6
    assert metrics["Qualified"]["conversion_to_next"] == round(1 / 3, 4)
    assert metrics["Lead"]["avg_days_in_stage"] == 0.0
    assert metrics["Closed Won"]["conversion_to_next"] is None
    admin("GET", "/pipeline/boards/999999/metrics", status=404)


def test_lead_board_and_moves(admin, kanban_env):
    lead = admin("POST", "/leads", json={"name": "Grace Hopper", "email": "grace@navy.example", "estimated_value": "5000.00"})
    admin("POST", "/leads", json={"name": "Alan Turing", "status": "contacted"})
    board = admin("GET", "/pipeline/leads/board")
    assert [c["id"] for c in board["columns"]] == ["new", "contacted", "qualified", "unqualified", "converted"]
    assert _column(board, "New")["count"] == 1 and _column(board, "New")["value"] == "5000.00"
    card = admin("PUT", f"/pipeline/leads/{lead['id']}", json={"status": "qualified", "version": 1})
    assert card["status"] == "qualified" and card["version"] == 2
    admin("PUT", f"/pipeline/leads/{lead['id']}", json={"status": "contacted", "version": 1}, status=412)
    assert "status" in admin("PUT", f"/pipeline/leads/{lead['id']}", json={"status": "converted"}, status=422)["errors"]["json"]
    assert "status" in admin("PUT", f"/pipeline/leads/{lead['id']}", json={"status": "bogus"}, status=422)["errors"]["json"]
    assert _column(admin("GET", "/pipeline/leads/board"), "Qualified")["cards"][0]["title"] == "Grace Hopper"


def test_boards_list_and_settings(kanban_env):
    kanban_env.write_tenant("acme", name="Acme Ltd", plugins=["kanban"], settings={"kanban": {"pipelines": ["Renewals"], "lead_board": False, "default_pipeline": "Renewals", "wip_limits": {"Open": 1}}})
    kanban_env.reload()
    _user, token = user_token(kanban_env, "acme", "Ada Admin")
    api = Api(kanban_env, "acme", token)
    sales = api("POST", "/deals", json={"title": "Sales deal"})
    renewals = api("POST", "/pipelines", json={"name": "Renewals", "stages": [{"name": "Open"}, {"name": "Done", "is_won": True}]})
    for title in ("A", "B"):
        api("POST", "/deals", json={"title": title, "pipeline_id": renewals["id"]})
    boards = api("GET", "/pipeline/boards")
    assert [p["name"] for p in boards["pipelines"]] == ["Renewals"] and boards["default_pipeline_id"] == renewals["id"] and boards["lead_board"] is False
    api("GET", f"/pipeline/boards/{sales['pipeline_id']}", status=404)
    api("GET", "/pipeline/leads/board", status=404)
    column = api("GET", f"/pipeline/boards/{renewals['id']}")["columns"][0]
    assert column["wip_limit"] == 1 and column["over_wip_limit"] is True
    # One limit for every open column; wip_limits still wins where it names a stage.
    kanban_env.write_tenant("acme", name="Acme Ltd", plugins=["kanban"], settings={"kanban": {"wip_limit": 5, "wip_limits": {"Open": 1}}})
    kanban_env.reload()
    columns = {c["name"]: c for c in api("GET", f"/pipeline/boards/{sales['pipeline_id']}")["columns"]}
    assert columns["Lead"]["wip_limit"] == 5 and columns["Lead"]["over_wip_limit"] is False and columns["Closed Won"]["wip_limit"] is None
    assert api("GET", f"/pipeline/boards/{renewals['id']}")["columns"][0]["wip_limit"] == 1


def test_bad_settings_are_refused(kanban_env):
    import pytest

    kanban_env.write_tenant("acme", plugins=["kanban"], settings={"kanban": {"card_fields": ["value", "colour"], "wip_limits": {"Lead": 0}}})
    with pytest.raises(Exception) as info:
        kanban_env.reload()
    assert "card_fields" in str(info.value) or "wip_limits" in str(info.value)


def test_disabled_tenant_gets_404_and_no_nav_item(kanban_env):
    _user, token = user_token(kanban_env, "plain", "Paula Plain")
    api = Api(kanban_env, "plain", token)
    deal = api("POST", "/deals", json={"title": "Plain deal"})
    api("GET", "/pipeline/boards", status=404)
    api("GET", f"/pipeline/boards/{deal['pipeline_id']}", status=404)
    api("PUT", f"/pipeline/cards/{deal['id']}", json={"stage_id": deal["stage_id"]}, status=404)
    client = kanban_env.client("plain")
    kanban_env.login(client, "plain")
    assert "/app/kanban/" not in client.get("/app/").get_data(as_text=True)
    assert client.get("/app/kanban/").status_code == 404
    enabled = kanban_env.client("acme")
    kanban_env.login(enabled, "acme")
    assert re.search(r'href="/app/kanban/"[^>]*>Pipeline</a>', enabled.get("/app/").get_data(as_text=True))


def test_demo_data_adds_a_second_pipeline_once(kanban_env, admin):
    from crmcore.app import crm_state
    from crmcore.entities.models import Deal, Pipeline

    tenant = kanban_env.tenant("acme")
    with kanban_env.app.app_context(), db.database.connection_context():
        for _ in range(2):
            for _plugin, _result in crm_state().call(tenant, "crm_demo_data", tenant=tenant):
                pass
        from crmcore.db import tenant_context

        with tenant_context(tenant):
            partnerships = Pipeline.get(Pipeline.name == "Partnerships")
            assert Deal.select().where(Deal.pipeline == partnerships.id).count() == 6
            assert Pipeline.select().where(Pipeline.name == "Partnerships").count() == 1
            assert Deal.select().where(Deal.pipeline != partnerships.id).count() > 100  # the core's demo deals
    boards = admin("GET", "/pipeline/boards")
    assert [p["name"] for p in boards["pipelines"]] == ["Sales", "Partnerships"]
    board = admin("GET", f"/pipeline/boards/{partnerships.id}")
    pilot = next(c for c in board["columns"] if c["name"] == "Pilot")
    assert pilot["count"] == 2 and any(card["overdue"] for card in pilot["cards"])  # 41 days in a 30-day stage


def test_agents_see_and_move_only_their_own_cards_when_the_tenant_says_so(kanban_env):
    kanban_env.write_tenant("acme", name="Acme Ltd", plugins=["kanban"], settings={"core": {"agents_see_own_only": True}})
    kanban_env.reload()
    _admin_user, admin_token = user_token(kanban_env, "acme", "Ada Admin")
    agent, agent_token = user_token(kanban_env, "acme", "Alex Agent", role="agent")
    admin, as_agent = Api(kanban_env, "acme", admin_token), Api(kanban_env, "acme", agent_token)
    mine = admin("POST", "/deals", json={"title": "Alex's deal", "owner_id": agent.id})
    theirs = admin("POST", "/deals", json={"title": "Ada's deal", "owner_id": _admin_user.id})
    board = as_agent("GET", f"/pipeline/boards/{mine['pipeline_id']}")
    assert [c["title"] for column in board["columns"] for c in column["cards"]] == ["Alex's deal"]
    assert board["columns"][0]["count"] == 1
    as_agent("PUT", f"/pipeline/cards/{theirs['id']}", json={"stage_id": theirs["stage_id"]}, status=404)
    won = next(s for s in admin("GET", f"/pipelines/{mine['pipeline_id']}")["stages"] if s["is_won"])
    card = as_agent("PUT", f"/pipeline/cards/{mine['id']}", json={"stage_id": won["id"]})
    assert card["status"] == "won" and card["probability"] == 100
    assert admin("GET", f"/deals/{mine['id']}")["closed_at"] is not None
