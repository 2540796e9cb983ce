"""The API, the kanban badge hook, the admin page and the lead panel (server side)."""

from __future__ import annotations

from .conftest import days_ago, in_tenant, make_deal, make_lead


def auth(env, role="admin", slug="acme"):
    return {"Authorization": f"Bearer {env.token(slug, role)}"}


def seeded(env):
    from crm_plugins.scoring import engine

    with in_tenant(env) as tenant:
        hot = make_lead(name="Hot", status="qualified", estimated_value=60000, last_contact_at=days_ago(1))
        warm = make_lead(name="Warm", status="contacted", estimated_value=30000)
        cold = make_lead(name="Cold", status="new")
        engine.rescore(tenant)
    return hot, warm, cold


def test_lead_score_api(env):
    hot, warm, cold = seeded(env)
    client = env.client("acme")
    r = client.get(f"/api/v1/scoring/leads/{hot.id}", headers=auth(env, "viewer"))
    assert r.status_code == 200, r.json
    body = r.json
    assert body["score"] == 55 and body["grade"] == "C" and body["probability"] is None
    assert [f["name"] for f in body["factors"]] == ["probability", "value", "recent_contact"]
    assert body["factors"][1]["reason"] == "Value 60,000 above 50,000"
    assert [h["score"] for h in body["history"]] == [55]
    assert client.get("/api/v1/scoring/leads/999999", headers=auth(env)).status_code == 404
    assert client.get(f"/api/v1/scoring/leads/{hot.id}").status_code == 401
    # Another tenant's lead id is a 404 too.
    env.write_tenant("beta", plugins=["scoring"])
    env.reload()
    beta = env.client("beta")
    assert beta.get(f"/api/v1/scoring/leads/{hot.id}", headers=auth(env, slug="beta")).status_code == 404

    page = client.get("/api/v1/scoring/leads?sort=-score&limit=2", headers=auth(env, "agent")).json
    assert [i["name"] for i in page["items"]] == ["Hot", "Warm"] and page["next_cursor"]
    rest = client.get(f"/api/v1/scoring/leads?sort=-score&limit=2&cursor={page['next_cursor']}", headers=auth(env)).json
    assert [i["name"] for i in rest["items"]] == ["Cold"] and rest["next_cursor"] is None
    filtered = client.get("/api/v1/scoring/leads?min_score=20&max_score=50", headers=auth(env)).json
    assert [i["name"] for i in filtered["items"]] == ["Warm"]
    assert [i["name"] for i in client.get("/api/v1/scoring/leads?grade=C&grade=D&sort=score", headers=auth(env)).json["items"]] == ["Cold", "Warm", "Hot"]
    bad = client.get("/api/v1/scoring/leads?min_score=120&grade=Z", headers=auth(env))
    assert bad.status_code == 422 and {"min_score", "grade"} <= set(bad.json["errors"]["query"])
    assert client.get("/api/v1/scoring/leads?min_score=60&max_score=10", headers=auth(env)).status_code == 422


def test_recompute_api(env):
    hot, warm, cold = seeded(env)
    client = env.client("acme")
    with in_tenant(env):
        from crmcore.entities import service

        service.update(cold, {"status": "qualified"})
    r = client.post("/api/v1/scoring/recompute", json={"lead_ids": [cold.id]}, headers=auth(env, "manager"))
    assert r.status_code == 200 and r.json == {"scored": 1}
    assert client.get(f"/api/v1/scoring/leads/{cold.id}", headers=auth(env)).json["score"] == 40
    assert client.post("/api/v1/scoring/recompute", json={}, headers=auth(env)).json == {"scored": 3}
    assert client.post("/api/v1/scoring/recompute", json={}, headers=auth(env, "agent")).status_code == 403
    bad = client.post("/api/v1/scoring/recompute", json={"lead_ids": [cold.id, 999999]}, headers=auth(env))
    assert bad.status_code == 422 and "999999" in bad.json["errors"]["json"]["lead_ids"][0]
    assert client.post("/api/v1/scoring/recompute", json={"lead_ids": "x"}, headers=auth(env)).status_code == 422
    model = client.get("/api/v1/scoring/model", headers=auth(env)).json
    assert model["trained"] is False and model["min_training_examples"] == 30


def test_hook_impl_kanban_card_badges(env):
    """scoring implements kanban's crm_kanban_card_badges, called through the plugin manager."""
    env.write_tenant("acme", plugins=["scoring", "kanban"])
    env.reload()
    hot, warm, cold = seeded(env)
    from crmcore.app import crm_state

    with in_tenant(env) as tenant:
        deal = make_deal(hot, 40, 100)
        lone = make_deal(make_lead(name="Unscored"), 40, 100)
        from crm_plugins.scoring.models import LeadScore

        LeadScore.delete().where(LeadScore.lead == lone.lead_id).execute()
        results = dict(crm_state().call(tenant, "crm_kanban_card_badges", tenant=tenant, entity="lead", record_ids=[hot.id, cold.id]))
        badges = {b.record_id: b for b in results["scoring"]}
        assert badges[hot.id].label == "55 · C" and badges[hot.id].tone == "warn"
        assert badges[cold.id].label == "10 · D" and "Lead score 10" in badges[cold.id].title
        deals = dict(crm_state().call(tenant, "crm_kanban_card_badges", tenant=tenant, entity="deal", record_ids=[deal.id, lone.id]))["scoring"]
        assert [(b.record_id, b.label) for b in deals] == [(deal.id, "55 · C")]


def test_record_panel_and_widget(env):
    hot, warm, cold = seeded(env)
    client = env.client("acme")
    env.login(client, role="agent")
    page = client.get(f"/app/leads/{hot.id}").get_data(as_text=True)
    assert 'data-panel="scoring"' in page and 'data-score="55.0"' in page
    assert "Value 60,000 above 50,000" in page
    dash = client.get("/app/").get_data(as_text=True)
    assert "Lead scores" in dash and "Hot" in dash
    # Agents have no admin page and no nav item.
    assert client.get("/app/scoring/").status_code == 403
    assert 'href="/app/scoring/"' not in dash
    assert client.get("/app/scoring/static/scoring.css").status_code == 200


def test_admin_page_preview_and_save(env):
    from crm_plugins.scoring.models import LeadScore, ScoringOverride

    hot, warm, cold = seeded(env)
    client = env.client("acme")
    env.login(client, role="manager")
    page = client.get("/app/scoring/")
    assert page.status_code == 200 and 'href="/app/scoring/"' in page.get_data(as_text=True)
    form = {k: v for k, v in _form_defaults(client).items()}
    form.update({"csrf_token": env.csrf(client), "weights.base": "2", "action": "preview"})
    r = client.post("/app/scoring/", data=form)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "Preview: effect on 3 leads" in html
    with in_tenant(env):
        assert ScoringOverride.select().count() == 0 and LeadScore.get(LeadScore.lead == hot.id).score == 55
    bad = client.post("/app/scoring/", data={**form, "grades.B": "95", "thresholds": "50, 500"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "must be lower than A" in text and "Must be greater than or equal to 0 and less than or equal to 100" in text
    saved = client.post("/app/scoring/", data={**form, "action": "save"})
    assert saved.status_code == 302
    with in_tenant(env):
        assert ScoringOverride.get().values == {"weights": {"base": 2.0}}
        assert LeadScore.get(LeadScore.lead == hot.id).score == 100  # 110 clamped
        assert LeadScore.get(LeadScore.lead == cold.id).score == 20
    client.post("/app/scoring/", data={"csrf_token": env.csrf(client), "action": "reset"})
    with in_tenant(env):
        assert ScoringOverride.select().count() == 0 and LeadScore.get(LeadScore.lead == hot.id).score == 55


def _form_defaults(client):
    import re

    html = client.get("/app/scoring/").get_data(as_text=True)
    values = {m.group(1): m.group(2) for m in re.finditer(r'<input id="f-[^"]*" name="([^"]+)" type="text" value="([^"]*)"', html)}
    for m in re.finditer(r'<textarea id="f-[^"]*" name="([^"]+)"[^>]*>([^<]*)</textarea>', html, re.DOTALL):
        values[m.group(1)] = m.group(2)
    values["base.use_probability"] = "on"
    assert "weights.base" in values and "fit.seniority" in values
    return values


def test_deleting_a_lead_deletes_its_score(env):
    from crm_plugins.scoring.models import LeadScore, ScoreHistory

    hot, _warm, _cold = seeded(env)
    client = env.client("acme")
    assert client.delete(f"/api/v1/leads/{hot.id}", headers=auth(env)).status_code == 204
    with in_tenant(env):
        assert not LeadScore.select().where(LeadScore.lead == hot.id).exists()
        assert not ScoreHistory.select().where(ScoreHistory.lead == hot.id).exists()
        assert LeadScore.select().count() == 2
    assert client.get(f"/api/v1/scoring/leads/{hot.id}", headers=auth(env)).status_code == 404


def test_unscored_lead_is_computed_not_stored(env):
    from crm_plugins.scoring.models import LeadScore

    with in_tenant(env):
        lead = make_lead(name="Brand new", status="contacted")
        LeadScore.delete().execute()
    body = env.client("acme").get(f"/api/v1/scoring/leads/{lead.id}", headers=auth(env)).json
    assert body["score"] == 20 and body["computed_at"] is None and body["history"] == []
    with in_tenant(env):
        assert LeadScore.select().count() == 0
