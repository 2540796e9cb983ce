"""The scoring plugin's part of privacy requests and merges, through the API: a lead's
score, reasons and history are exported and erased; a merge drops the merged lead's
score and rescores the kept lead."""

from __future__ import annotations

import json
from typing import Any

from crm_plugins.scoring import engine
from crm_plugins.scoring.models import LeadScore, ScoreHistory
from crmcore.entities import service
from crmcore.entities.models import Contact, Lead
from crmcore.models import Task as QueuedTask
from crmcore.tasks import Worker

from .conftest import in_tenant, make_lead


def api(env: Any, slug: str = "acme") -> tuple[Any, dict[str, str]]:
    return env.client(slug), {"Authorization": f"Bearer {env.token(slug, 'admin')}"}


def rescore_tasks(env: Any) -> list[dict[str, Any]]:
    with in_tenant(env):
        return [json.loads(t.payload) for t in QueuedTask.select().where((QueuedTask.kind == "scoring.rescore") & (QueuedTask.status == "queued")).order_by(QueuedTask.id)]


def run_tasks(env: Any) -> None:
    with in_tenant(env):
        worker = Worker(env.crm)
        while worker.run_one() is not None:
            pass


def test_export_and_erase_a_leads_score(env: Any) -> None:
    with in_tenant(env) as tenant:
        ada = make_lead(name="Ada Lovelace", email="ada@example.com", company_name="Analytical Engines")
        bob = make_lead(name="Charles Babbage", email="charles@example.com")
        engine.rescore(tenant)
    client, headers = api(env)

    data = client.get(f"/api/v1/leads/{ada.id}/export", headers=headers).json
    section = data["plugins"]["scoring"]
    [score] = section["scores"]
    assert score["lead_id"] == ada.id and score["grade"] in "ABCD" and {"name", "reason", "points"} <= set(score["factors"][0])
    assert [h["lead_id"] for h in section["history"]] == [ada.id]

    erased = client.post(f"/api/v1/leads/{ada.id}/erase", headers=headers)
    assert erased.status_code == 200
    assert erased.json["erased"]["scoring_lead_score"] == 1 and erased.json["erased"]["scoring_history"] == 1
    with in_tenant(env):
        assert not LeadScore.select().where(LeadScore.lead == ada.id).exists()
        assert not ScoreHistory.select().where(ScoreHistory.lead == ada.id).exists()
        assert LeadScore.select().where(LeadScore.lead == bob.id).exists()  # nobody else's
    assert "scoring" not in client.get(f"/api/v1/leads/{ada.id}/export", headers=headers).json["plugins"]


def test_merge_drops_the_merged_score_and_rescores_the_kept_lead(env: Any) -> None:
    with in_tenant(env) as tenant:
        kept = make_lead(name="Ada")
        other = make_lead(name="Ada L.", email="ada@example.com", budget=50000)
        engine.rescore(tenant)
        QueuedTask.delete().execute()  # the creates' own rescores
    client, headers = api(env)
    response = client.post(f"/api/v1/leads/{kept.id}/merge", json={"other_id": other.id}, headers=headers)
    assert response.status_code == 200, response.json
    assert rescore_tasks(env) == [{"lead_ids": [kept.id]}]
    with in_tenant(env):
        assert not LeadScore.select().where(LeadScore.lead == other.id).exists()
        assert not ScoreHistory.select().where(ScoreHistory.lead == other.id).exists()
        before = LeadScore.get(LeadScore.lead == kept.id).rule_score
    run_tasks(env)
    with in_tenant(env):
        assert LeadScore.get(LeadScore.lead == kept.id).rule_score > before  # the budget now counts


def test_merging_contacts_rescores_their_leads(env: Any) -> None:
    with in_tenant(env):
        kept = service.create(Contact, {"first_name": "Ada", "email": "ada@example.com"})
        other = service.create(Contact, {"first_name": "Ada", "email": "ada@work.example", "job_title": "CEO"})
        lead = make_lead(name="Ada's lead")
        Lead.update(contact=other.id).where(Lead.id == lead.id).execute()
        QueuedTask.delete().execute()
    client, headers = api(env)
    assert client.post(f"/api/v1/contacts/{kept.id}/merge", json={"other_id": other.id}, headers=headers).status_code == 200
    assert rescore_tasks(env) == [{"lead_ids": [lead.id]}]


def test_tenant_without_scoring_is_not_asked(env: Any) -> None:
    with in_tenant(env, "beta"):
        lead = make_lead(name="Ada")
        LeadScore.create(lead=lead.id, score=50, grade="C")  # from when scoring was on
    client, headers = api(env, "beta")
    assert "scoring" not in client.get(f"/api/v1/leads/{lead.id}/export", headers=headers).json["plugins"]
    assert client.post(f"/api/v1/leads/{lead.id}/erase", headers=headers).status_code == 200
    with in_tenant(env, "beta"):
        assert LeadScore.select().where(LeadScore.lead == lead.id).exists()
