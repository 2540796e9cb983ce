"""When scores change: debounced tasks on signals, the nightly job, history, signals,
the extra-factor hook, and a tenant without the plugin."""

from __future__ import annotations

import contextlib
from typing import Any

from crmcore import db
from crmcore.models import Task

from .conftest import days_ago, in_tenant, make_deal, make_lead


def run_tasks(env):
    from crmcore.tasks import Worker

    worker = Worker(env.crm)
    with db.database.connection_context():
        Task.update(next_run_at=days_ago(1)).where(Task.status == "queued").execute()
        while worker.run_one() is not None:
            pass


def test_signals_enqueue_debounced_rescore(env):
    from crm_plugins.scoring.models import LeadScore
    from crmcore.entities import service
    from crmcore.entities.models import Activity, Stage

    env.write_tenant("acme", plugins=["scoring"], settings={"scoring": {"debounce_seconds": 600}})
    env.reload()
    with in_tenant(env):
        Task.delete().execute()  # the rescore-all of the config change (tested below)
        lead = make_lead(name="Busy", status="new")
        service.update(lead, {"status": "contacted"})
        service.update(lead, {"estimated_value": "60000"})
        service.log_activity({"lead": lead.id, "kind": "call", "direction": "out", "subject": "hi"})
        # One task for the burst (same debounce window), due at the window's end.
        tasks = list(Task.select().where(Task.kind == "scoring.rescore"))
        assert len(tasks) == 1 and tasks[0].next_run_at > days_ago(0)
        assert LeadScore.get_or_none(LeadScore.lead == lead.id) is None
    run_tasks(env)
    with in_tenant(env):
        row = LeadScore.get(LeadScore.lead == lead.id)
        # contacted 20 + value 10 + contact 5, activity 1, recency 10
        assert row.rule_score == 46
        deal = make_deal(lead, 50, 1000)
        won = Stage.get(Stage.name == "Closed Won")
        service.move_deal(deal, won)
        assert Task.select().where((Task.kind == "scoring.rescore") & (Task.status == "queued")).count() == 1
        Activity.delete().execute()


def test_chat_message_signal_rescores_without_chat(env):
    from crmcore import signals

    with in_tenant(env) as tenant:
        lead = make_lead(name="Chatty")
        Task.delete().execute()
        signals.signal("chat_message_received").send(tenant, conversation=None, message=None, lead=lead)
        signals.signal("chat_message_received").send(tenant, conversation=None, message=None, lead=None)
        assert [t.kind for t in Task.select()] == ["scoring.rescore"]


def test_config_change_rescores_everything(env):
    from crm_plugins.scoring.models import LeadScore

    with in_tenant(env):
        make_lead(name="Before", status="qualified")
        Task.delete().execute()
    env.write_tenant("acme", plugins=["scoring"], settings={"scoring": {"weights": {"base": 0.5}}})
    env.reload()
    with in_tenant(env):
        assert [t.payload for t in Task.select()] == ['{"all": true}']
    run_tasks(env)
    with in_tenant(env):
        assert [r.score for r in LeadScore.select()] == [20]


def test_history_and_score_signals(env, captured_signals):
    from crm_plugins.scoring import engine
    from crm_plugins.scoring.models import ScoreHistory
    from crmcore.entities import service

    with in_tenant(env) as tenant:
        lead = make_lead(name="Rising", status="new")
        with captured_signals("lead_score_changed", "lead_score_threshold_crossed") as sent:
            engine.rescore(tenant, [lead.id])  # first score: 10
            service.update(lead, {"status": "qualified", "estimated_value": "60000", "last_contact_at": days_ago(1)})
            engine.rescore(tenant, [lead.id])  # 40 + 10 + 5 = 55: crosses 50
            engine.rescore(tenant, [lead.id])  # unchanged: nothing
        history = [(h.score, h.grade) for h in ScoreHistory.select().order_by(ScoreHistory.id)]
    assert history == [(10, "D"), (55, "C")]
    changed = [d for name, _, d in sent if name == "lead_score_changed"]
    assert [(d["old"], d["new"], d["grade"]) for d in changed] == [(None, 10, "D"), (10, 55, "C")]
    crossed = [d for name, _, d in sent if name == "lead_score_threshold_crossed"]
    assert [(d["threshold"], d["old"], d["new"]) for d in crossed] == [(50, 10, 55)]
    assert all(sender.slug == "acme" for _, sender, _ in sent)


def test_nightly_job_rescore_all_skips_disabled_tenant(env):
    from crm_plugins.scoring.models import LeadScore
    from crmcore.jobs import Scheduler

    with in_tenant(env):
        ids = [make_lead(name=f"n{i}").id for i in range(3)]
        LeadScore.delete().execute()
    with in_tenant(env, "beta"):
        make_lead(name="beta lead")
    scheduler = Scheduler(env.crm, holder="test")
    assert {"scoring:rescore_all", "scoring:train"} <= set(scheduler.jobs)
    assert scheduler.run_job("scoring:rescore_all") == ["acme"]
    assert scheduler.run_job("scoring:train") == ["acme"]
    with in_tenant(env):
        assert sorted(r.lead_id for r in LeadScore.select()) == sorted(ids)


def test_disabled_tenant(env):
    beta = env.client("beta")
    env.login(beta, "beta", role="admin")
    with in_tenant(env, "beta"):
        lead = make_lead(name="Beta lead")
        assert Task.select().where(Task.kind == "scoring.rescore").count() == 0  # the receiver skipped
    token = env.token("beta", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    assert beta.get(f"/api/v1/scoring/leads/{lead.id}", headers=headers).status_code == 404
    assert beta.post("/api/v1/scoring/recompute", json={}, headers=headers).status_code == 404
    assert beta.get("/app/scoring/").status_code == 404
    page = beta.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert "Lead score" not in page and "/app/scoring/" not in page
    dash = beta.get("/app/").get_data(as_text=True)
    assert "Lead scores" not in dash


class ExtraFactors:
    """A tiny plugin awarding points through crm_scoring_factors."""

    def __init__(self):
        self.calls = []

    from crmcore import hookimpl

    @hookimpl
    def crm_scoring_factors(self, tenant):
        from crm_plugins.scoring.contrib import ScoreFactor

        def compute(tenant, lead_ids):
            self.calls.append(list(lead_ids))
            return {lid: (7.0, "Came from the partner portal") for lid in lead_ids}

        return [ScoreFactor(name="extra:portal", label="Partner portal", compute=compute, component="other")]


def test_hook_crm_scoring_factors(env, register_plugin):
    from crm_plugins.scoring import engine

    plugin = register_plugin(ExtraFactors(), name="extra", always_on=False)
    env.write_tenant("acme", plugins=["scoring", "extra"], settings={"scoring": {"weights": {"other": 2}}})
    env.write_tenant("beta", plugins=["scoring"])
    env.reload()
    with in_tenant(env) as tenant:
        ids = [make_lead(name=f"p{i}", status="new").id for i in range(3)]
        result = engine.compute(tenant, ids)
    assert plugin.calls == [sorted(ids)]  # one call for the whole batch
    factor = next(f for f in result[ids[0]].factors if f["name"] == "extra:portal")
    assert factor == {"name": "extra:portal", "label": "Partner portal", "component": "other", "points": 14.0, "reason": "Came from the partner portal"}
    assert result[ids[0]].score == 24
    with in_tenant(env, "beta") as tenant:
        lead = make_lead(name="beta", status="new")
        result = engine.compute(tenant, [lead.id])
    # The extra plugin is off for beta: its factor does not count there.
    assert result[lead.id].score == 10 and all(f["name"] != "extra:portal" for f in result[lead.id].factors)
    assert len(plugin.calls) == 1


def test_extra_factor_calls_are_bounded(env, register_plugin, monkeypatch):
    """A whole-tenant rescore hands a factor at most BATCH ids per call (IN-list limits)."""
    from crm_plugins.scoring import engine

    plugin = register_plugin(ExtraFactors(), name="extra", always_on=True)
    monkeypatch.setattr(engine, "BATCH", 2)
    with in_tenant(env) as tenant:
        ids = [make_lead(name=f"b{i}", status="new").id for i in range(3)]
        result = engine.compute(tenant, None)
    assert sorted(len(c) for c in plugin.calls) == [1, 2] and sorted(sum(plugin.calls, [])) == sorted(ids)
    assert all(r.score == 17 for r in result.values())


def test_demo_data_scores_idempotently(env):
    from crm_plugins.scoring.models import LeadScore, ScoreHistory, ScoringModel
    from crmcore.app import crm_state
    from crmcore.entities.models import Lead

    with in_tenant(env) as tenant:
        crm_state().call(tenant, "crm_demo_data", tenant=tenant)
        leads = Lead.select().count()
        first = (LeadScore.select().count(), ScoreHistory.select().count(), ScoringModel.select().count())
        assert leads > 0 and first == (leads, leads, 1)
        crm_state().call(tenant, "crm_demo_data", tenant=tenant)
        assert (LeadScore.select().count(), ScoreHistory.select().count(), ScoringModel.select().count()) == first


def test_the_rescore_task_commits_with_the_change_that_causes_it(env: Any) -> None:
    """The outbox (issue 19): the rescore task is written in the change's own
    transaction, so a committed lead always has its task (a crash or a database error
    right after the commit used to leave it unscored until the nightly run), and a
    rolled-back change leaves none."""
    with in_tenant(env):
        with db.atomic():
            lead = make_lead(name="Outboxed")
            assert Task.select().where(Task.kind == "scoring.rescore", Task.payload.contains(f"[{lead.id}]")).exists()
        with contextlib.suppress(RuntimeError), db.atomic():
            ghost = make_lead(name="Rolled back")
            raise RuntimeError("the change fails")
        assert not Task.select().where(Task.payload.contains(f"[{ghost.id}]")).exists()
        assert Task.select().where(Task.kind == "scoring.rescore", Task.payload.contains(f"[{lead.id}]")).count() == 1


def test_a_failing_in_transaction_receiver_does_not_undo_the_change(env: Any) -> None:
    """An in-transaction receiver runs in a savepoint: its failure (a database error,
    which on PostgreSQL would abort the whole transaction) is logged and contained."""
    from crmcore.entities.models import Lead
    from crmcore.signals import connect_receiver

    def broken(tenant: Any, **_: Any) -> None:
        db.database.execute_sql("SELECT * FROM no_such_table")

    receiver = connect_receiver("broken", "entity_created", broken, lambda tenant, plugin: True, in_transaction=True)
    try:
        with in_tenant(env):
            with db.atomic():
                lead = make_lead(name="Survives")
            assert Lead.select().where(Lead.id == lead.id).exists()
    finally:
        from crmcore.signals import signal

        signal(receiver.crm_signal).disconnect(receiver)
