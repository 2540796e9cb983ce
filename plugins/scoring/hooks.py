"""Hook implementations of the scoring plugin."""

from __future__ import annotations

import datetime as dt
import logging
import time
import weakref
from typing import Any

from crm_plugins.scoring import api, engine, predictive, views
from crm_plugins.scoring.models import (
    MODELS,
    LeadScore,
    ScoreHistory,
    ScoringModel,
    ScoringOverride,
)
from crmcore import sdk
from crmcore.sdk import (
    DashboardWidget,
    Migration,
    NavItem,
    Permission,
    RecordPanel,
    ScheduledJob,
    SignalReceiver,
    TaskHandler,
    create_tables,
    enqueue,
    hookimpl,
    payload_of,
)

log = logging.getLogger("crm_plugins.scoring")

TASK_KIND = "scoring.rescore"


# --------------------------------------------------------------------------- rescoring


def schedule_rescore(tenant: Any, lead_id: int | None) -> None:
    """Queue a rescore of ``lead_id``, debounced: every event about the lead within one
    ``debounce_seconds`` window shares one task (same idempotency key), which runs at the
    window's end, so a burst of edits costs one rescore."""
    if not lead_id:
        return
    seconds = engine.file_settings(tenant)["debounce_seconds"]
    if seconds <= 0:
        enqueue(TASK_KIND, {"lead_ids": [lead_id]}, tenant=tenant)
        return
    # Epoch seconds from time.time(): utcnow() is naive, and .timestamp() of a naive
    # datetime would read it as local time.
    bucket = int(time.time()) // seconds
    run_at = dt.datetime.fromtimestamp((bucket + 1) * seconds, dt.UTC).replace(tzinfo=None)
    key = f"scoring:{tenant.id}:{lead_id}:{bucket}"
    for _ in range(5):
        task = enqueue(TASK_KIND, {"lead_ids": [lead_id]}, tenant=tenant, idempotency_key=key, run_at=run_at)
        if task.status == "queued":
            return
        # The window's task already ran (or is running, maybe reading the old data): this
        # event needs a rescore of its own, shared by what follows it in the window.
        key = f"{key}:{task.id}"
    enqueue(TASK_KIND, {"lead_ids": [lead_id]}, tenant=tenant, run_at=run_at)


def _lead_of(entity: str, record: Any) -> int | None:
    if record is None:
        return None
    if entity == "lead":
        return record.id
    if entity in ("activity", "deal", "note", "task"):
        return getattr(record, "lead_id", None)
    return None


def on_entity(tenant: Any, entity: str = "", record: Any = None, **_: Any) -> None:
    """entity_created / entity_updated of a lead, or of an activity or deal on one."""
    if entity in ("lead", "activity", "deal"):
        schedule_rescore(tenant, _lead_of(entity, record))


def on_entity_deleted(tenant: Any, entity: str = "", record: Any = None, **_: Any) -> None:
    """A deleted activity or deal changes its lead's score; a deleted lead's score goes
    with it (ON DELETE CASCADE)."""
    if entity in ("activity", "deal"):
        schedule_rescore(tenant, _lead_of(entity, record))


def on_deal_stage_changed(tenant: Any, deal: Any = None, **_: Any) -> None:
    schedule_rescore(tenant, getattr(deal, "lead_id", None))


def on_lead_converted(tenant: Any, lead: Any = None, **_: Any) -> None:
    schedule_rescore(tenant, getattr(lead, "id", None))


def on_chat_message(tenant: Any, lead: Any = None, **_: Any) -> None:
    schedule_rescore(tenant, getattr(lead, "id", None))


#: The app built last (crm_startup): a configuration reload can happen outside any app
#: context (the config watcher, the worker loop), and enqueue needs one.
_app: weakref.ReferenceType[Any] | None = None


def on_config_changed(tenant: Any, **_: Any) -> None:
    """The tenant file changed (maybe the scoring settings): rescore every lead, once."""
    import flask


    app = flask.current_app._get_current_object() if flask.has_app_context() else (_app() if _app else None)
    if app is None:
        log.warning("scoring: configuration of %s changed outside an app; the nightly job will rescore", tenant.slug)
        return
    with app.app_context(), sdk.connection():
        enqueue(TASK_KIND, {"all": True}, tenant=tenant, idempotency_key=f"scoring:{tenant.id}:all:{int(time.time())}")


def rescore_task(task: Any) -> None:
    from crmcore.sdk import current_tenant

    payload = payload_of(task)
    if payload.get("all"):
        engine.rescore(current_tenant())
    else:
        engine.rescore(current_tenant(), [int(i) for i in payload.get("lead_ids", [])])


def rescore_all_job(tenant: Any) -> None:
    n = engine.rescore(tenant)
    log.info("scoring: rescored %d leads of %s", n, tenant.slug)


def train_job(tenant: Any) -> None:
    """Retrain, then rescore at once: stored scores keep the model's feature vector and
    their top features are worked out with the current model when read."""
    predictive.train(tenant)
    engine.rescore(tenant)


# --------------------------------------------------------------------------- hooks


@hookimpl
def crm_models():
    return MODELS


@hookimpl
def crm_migrations():
    return [Migration("0001_initial", create_tables(LeadScore, ScoreHistory, ScoringModel, ScoringOverride))]


@hookimpl
def crm_api_blueprints():
    return [api.blp]


@hookimpl
def crm_web_blueprints():
    return [views.bp]


@hookimpl
def crm_permissions():
    return [Permission("scoring:manage", roles=("admin", "manager"), description="Edit scoring rules, recompute scores, train the model.")]


@hookimpl
def crm_nav_items(tenant, user):
    return [NavItem(label="Scoring", endpoint="scoring.index", order=70, icon="gauge", roles=("admin", "manager"))]


@hookimpl
def crm_signal_receivers():
    return [
        SignalReceiver("entity_created", on_entity, in_transaction=True),
        SignalReceiver("entity_updated", on_entity, in_transaction=True),
        SignalReceiver("entity_deleted", on_entity_deleted, in_transaction=True),
        SignalReceiver("deal_stage_changed", on_deal_stage_changed, in_transaction=True),
        SignalReceiver("lead_converted", on_lead_converted, in_transaction=True),
        SignalReceiver("chat_message_received", on_chat_message),
        SignalReceiver("tenant_config_changed", on_config_changed),
    ]


@hookimpl
def crm_task_handlers():
    return [TaskHandler(TASK_KIND, rescore_task)]


@hookimpl
def crm_scheduled_jobs():
    # Train first, so that the nightly rescore uses the fresh model.
    return [
        ScheduledJob("scoring:train", train_job, trigger="cron", trigger_args={"hour": 2, "minute": 30}),
        ScheduledJob("scoring:rescore_all", rescore_all_job, trigger="cron", trigger_args={"hour": 3, "minute": 0}),
    ]


@hookimpl
def crm_record_panels(tenant, user, entity, record):
    if entity != "lead":
        return []
    return [RecordPanel(name="scoring", title="Lead score", render=lambda: views.lead_panel(tenant, record), order=10)]


@hookimpl
def crm_list_columns(tenant, user, entity):
    return [views.list_column()] if entity == "lead" else []


@hookimpl
def crm_dashboard_widgets(tenant, user):
    return [DashboardWidget(name="scoring-grades", title="Lead scores", render=lambda: views.dashboard_widget(tenant), order=30)]


@hookimpl
def crm_kanban_card_badges(tenant, entity, record_ids):
    """Score and grade on lead cards, and on deal cards the score of the deal's lead."""
    from crm_plugins.kanban.contrib import CardBadge
    from crmcore.sdk import Deal

    if not record_ids or entity not in ("lead", "deal"):
        return []
    tones = {"A": "good", "B": "good", "C": "warn", "D": "bad"}
    if entity == "lead":
        rows = LeadScore.select(LeadScore.lead, LeadScore.score, LeadScore.grade).where(LeadScore.lead.in_(record_ids)).tuples()
        pairs = [(lid, lid, score, grade) for lid, score, grade in rows]
    else:
        rows = (
            Deal.select(Deal.id, LeadScore.lead, LeadScore.score, LeadScore.grade)
            .join(LeadScore, on=(LeadScore.lead == Deal.lead))
            .where(Deal.id.in_(record_ids), LeadScore.tenant == Deal.tenant)
            .tuples()
        )
        pairs = list(rows)
    return [
        CardBadge(record_id=rid, label=f"{score:.0f} · {grade}", title=f"Lead score {score:.0f} (grade {grade})" + ("" if rid == lid else f" of lead {lid}"), tone=tones.get(grade, "neutral"), order=20)
        for rid, lid, score, grade in pairs
    ]


@hookimpl
def crm_startup(app):
    global _app
    _app = weakref.ref(app)


@hookimpl
def crm_demo_data(tenant):
    # The core's demo records exist already: its crm_demo_data is tryfirst. Both steps
    # are idempotent (a rescore of unchanged leads writes nothing new).
    predictive.train(tenant)
    engine.rescore(tenant)


# Privacy requests and merges: plugins/scoring/privacy.py does the work.


@hookimpl
def crm_privacy_export(tenant, entity, record_id, lead_ids, contact_ids):
    from crm_plugins.scoring import privacy

    return privacy.export(lead_ids)


@hookimpl
def crm_privacy_erase(tenant, entity, record_id, lead_ids, contact_ids):
    from crm_plugins.scoring import privacy

    return privacy.erase(lead_ids)


@hookimpl
def crm_merge_records(tenant, entity, kept_id, merged_id):
    from crm_plugins.scoring import privacy

    return privacy.merge(tenant, entity, kept_id, merged_id)
