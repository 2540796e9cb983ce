"""Sentiment of interactions: signals -> durable tasks -> ``insights_sentiment``.

Receivers only enqueue (one task per interaction and version, idempotent); the task
handler scores a batch of records with VADER and writes their rows in a constant number
of queries; :func:`backfill` walks the records that have no row yet, in batches.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from peewee import JOIN, fn

from crm_plugins.insights import bulk, sentiment
from crm_plugins.insights.models import InteractionSentiment
from crmcore import sdk
from crmcore.sdk import Activity, Note, enqueue, payload_of

TASK_KIND = "insights.sentiment"
PLUGIN = "insights"
SCORED_ENTITIES = ("activity", "note")


def _settings(tenant: Any) -> Any:
    return sdk.settings(tenant, PLUGIN)


# --------------------------------------------------------------------------- receivers


def on_entity_saved(tenant: Any, entity: str = "", record: Any = None, **_: Any) -> None:
    """A created or edited activity or note: queue its (re)scoring."""
    if entity not in SCORED_ENTITIES or record is None:
        return
    version = getattr(record, "version", 1)
    enqueue(TASK_KIND, {"entity": entity, "ids": [record.id]}, tenant=tenant, idempotency_key=f"insights:sentiment:{tenant.id}:{entity}:{record.id}:{version}")


def on_entity_deleted(tenant: Any, entity: str = "", record_id: int | None = None, **_: Any) -> None:
    """A deleted activity or note takes its sentiment with it (one quick DELETE)."""
    if entity in SCORED_ENTITIES and record_id:
        InteractionSentiment.delete().where(InteractionSentiment.entity == entity, InteractionSentiment.record_id == record_id).execute()


def on_chat_message(tenant: Any, conversation: Any = None, message: Any = None, lead: Any = None, **_: Any) -> None:
    """A visitor's chat message (the chat plugin's signal): the text travels in the task,
    because the chat plugin's tables are its own business."""
    if message is None:
        return
    lead_id = getattr(lead, "id", None) or getattr(conversation, "lead_id", None)
    created = getattr(message, "created_at", None) or sdk.utcnow()
    item = {"id": message.id, "text": getattr(message, "content", "") or "", "lead_id": lead_id, "at": created.isoformat(sep=" ")}
    enqueue(TASK_KIND, {"entity": "chat_message", "items": [item]}, tenant=tenant, idempotency_key=f"insights:sentiment:{tenant.id}:chat_message:{message.id}")


def on_channel_message(tenant: Any, message: Any = None, conversation: Any = None, automated: bool = False, **_: Any) -> None:
    """An inbound message of any channel (the channels plugin's ``message_received``:
    email, SMS ...): the customer's words, scored per conversation. Auto-replies (out of
    office) are not the customer's mood and are skipped. The row has no record links: the
    message's timeline activity is scored as an activity and counts for the record."""
    if message is None or automated:
        return
    text = " \n".join(t for t in (getattr(message, "subject", ""), getattr(message, "body_text", "")) if t)
    created = getattr(message, "created_at", None) or sdk.utcnow()
    conversation_id = getattr(conversation, "id", None) or getattr(message, "conversation_id", None)
    item = {"id": message.id, "text": text, "conversation_id": conversation_id, "at": created.isoformat(sep=" ")}
    enqueue(TASK_KIND, {"entity": "message", "items": [item]}, tenant=tenant, idempotency_key=f"insights:sentiment:{tenant.id}:message:{message.id}")


# --------------------------------------------------------------------------- scoring

#: entities whose texts travel in the task (another plugin's tables)
CARRIED_ENTITIES = ("chat_message", "message")


def sentiment_task(task: Any) -> None:
    payload = payload_of(task)
    entity = payload.get("entity")
    if entity in CARRIED_ENTITIES:
        score_items(entity, payload.get("items") or [])
    elif entity in SCORED_ENTITIES:
        score_records(entity, [int(i) for i in payload.get("ids") or []])


def _select(entity: str) -> Any:
    """The text and links of activities or notes (a query to filter)."""
    if entity == "activity":
        return Activity.select(Activity.id, Activity.subject, Activity.content, Activity.outcome, Activity.lead, Activity.contact, Activity.company, Activity.deal, Activity.occurred_at)
    return Note.select(Note.id, Note.body, Note.lead, Note.contact, Note.company, Note.deal, Note.created_at)


def _items(entity: str, rows: Any) -> list[dict[str, Any]]:
    if entity == "activity":
        return [
            {"id": i, "text": " \n".join(t for t in (subject, content, outcome) if t), "lead_id": lead, "contact_id": contact, "company_id": company, "deal_id": deal, "at": at}
            for i, subject, content, outcome, lead, contact, company, deal, at in rows
        ]
    return [{"id": i, "text": body, "lead_id": lead, "contact_id": contact, "company_id": company, "deal_id": deal, "at": at} for i, body, lead, contact, company, deal, at in rows]


def _interactions(entity: str, ids: list[int]) -> list[dict[str, Any]]:
    """The texts and links of ``ids`` in one query."""
    model = Activity if entity == "activity" else Note
    return _items(entity, _select(entity).where(model.id.in_(ids)).tuples())


def score_records(entity: str, ids: list[int]) -> int:
    """Score activities or notes by id: three queries for the whole batch."""
    if not ids:
        return 0
    return score_items(entity, _interactions(entity, ids))


ROW_COLUMNS = (
    "tenant_id", "entity", "record_id", "lead_id", "contact_id", "company_id", "deal_id", "conversation_id", "score", "status", "note", "occurred_at", "computed_at",
)


def score_items(entity: str, items: list[dict[str, Any]], *, replace: bool = True) -> int:
    """Score ``items`` (``id``, ``text``, links, ``at``) and write their rows (replacing
    the stored ones unless the caller knows there are none: the backfill)."""
    if not items:
        return 0
    share = _settings(sdk.current_tenant())["min_english_share"]
    # times as the driver takes them: text on SQLite (how peewee stores them there),
    # datetimes or the same text on PostgreSQL; raw rows and task payloads are text already
    as_text = not sdk.is_postgres()
    now: Any = sdk.utcnow()
    now = now.isoformat(sep=" ") if as_text else now
    tenant_id = sdk.require_tenant_id()
    rows = []
    for item in items:
        result = sentiment.score_text(item.get("text"), share)
        at = item.get("at") or now
        if as_text and isinstance(at, dt.datetime):
            at = at.isoformat(sep=" ")
        rows.append((
            tenant_id, entity, int(item["id"]), item.get("lead_id"), item.get("contact_id"), item.get("company_id"), item.get("deal_id"),
            item.get("conversation_id"), result.score, result.status, result.note[:200], at, now,
        ))
    with sdk.atomic():
        if replace:
            InteractionSentiment.delete().where(InteractionSentiment.entity == entity, InteractionSentiment.record_id.in_([r[2] for r in rows])).execute()
        bulk.insert_ready_rows("insights_sentiment", ROW_COLUMNS, rows)
    return len(rows)


# --------------------------------------------------------------------------- backfill


def _missing(entity: str, after: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """The interactions without a sentiment row among the next ``limit`` ids after
    ``after``, with their texts, and the window's last id (None: no ids left). Two
    queries, both bounded by the window: an anti-join over the whole table with
    ``ORDER BY id LIMIT`` lets PostgreSQL pick a plan that scans everything per batch."""
    model = Activity if entity == "activity" else Note
    window = [i for (i,) in model.select(model.id).where(model.id > after).order_by(model.id).limit(limit).tuples()]
    if not window:
        return [], None
    tenant_id = sdk.require_tenant_id()
    on = (InteractionSentiment.entity == entity) & (InteractionSentiment.record_id == model.id) & (InteractionSentiment.tenant == tenant_id)
    query = (
        _select(entity).join(InteractionSentiment, JOIN.LEFT_OUTER, on=on)
        .where(InteractionSentiment.id.is_null(), model.id.between(window[0], window[-1])).order_by(model.id)
    )
    return _items(entity, sdk.database.execute(query).fetchall()), window[-1]  # raw rows: no conversion per value


def backfill(tenant: Any, *, inline: bool = False, batch: int | None = None) -> dict[str, int]:
    """Score every activity and note of ``tenant`` that has no sentiment yet, ``batch`` at
    a time: inline (the CLI's ``--now``, the benchmark: three queries per batch) or as one
    task per batch."""
    batch = batch or _settings(tenant)["backfill_batch"]
    counts: dict[str, int] = {}
    with sdk.tenant_context(tenant):
        for entity in SCORED_ENTITIES:
            after: int | None = 0
            done = 0
            while after is not None:
                items, after = _missing(entity, after, batch)
                if not items:
                    continue
                ids = [item["id"] for item in items]
                if inline:
                    score_items(entity, items, replace=False)
                else:
                    enqueue(TASK_KIND, {"entity": entity, "ids": ids}, tenant=tenant, idempotency_key=f"insights:backfill:{tenant.id}:{entity}:{ids[0]}:{ids[-1]}:{len(ids)}")
                done += len(ids)
            counts[entity] = done
    return counts


def backfill_job(tenant: Any) -> None:
    backfill(tenant)


# --------------------------------------------------------------------------- reading

LINK_COLUMNS = {"lead": "lead_id", "contact": "contact_id", "company": "company_id", "deal": "deal_id"}


def trend(entity: str, record_id: int, window_days: float | None = None) -> dict[str, Any]:
    """The sentiment of a record's interactions: the recent window's average against the
    one before it, and the latest scores (two queries)."""
    tenant = sdk.current_tenant()
    window = window_days or _settings(tenant)["sentiment_window_days"]
    column = getattr(InteractionSentiment, LINK_COLUMNS[entity])
    since = sdk.utcnow() - dt.timedelta(days=window)
    before = since - dt.timedelta(days=window)
    s = InteractionSentiment
    recent_avg = fn.AVG(sdk_case(s.occurred_at >= since, s.score))
    previous_avg = fn.AVG(sdk_case((s.occurred_at < since) & (s.occurred_at >= before), s.score))
    counts = s.select(recent_avg, previous_avg, fn.COUNT(s.score), fn.SUM(sdk_case(s.status == sentiment.NOT_SCORED, 1, 0))).where(column == record_id).tuples().first()
    recent, previous, scored, not_scored = counts or (None, None, 0, 0)
    latest = list(s.select(s.entity, s.record_id, s.score, s.status, s.note, s.occurred_at).where(column == record_id).order_by(s.occurred_at.desc(), s.id.desc()).limit(10).dicts())
    if recent is None or previous is None:
        direction = "steady" if recent is not None else "unknown"
    else:
        direction = "improving" if recent - previous >= 0.1 else "declining" if previous - recent >= 0.1 else "steady"
    return {
        "recent_average": None if recent is None else round(float(recent), 3),
        "previous_average": None if previous is None else round(float(previous), 3),
        "direction": direction, "scored": int(scored or 0), "not_scored": int(not_scored or 0),
        "window_days": window, "latest": latest,
    }


def sdk_case(condition: Any, then: Any, otherwise: Any = None) -> Any:
    from peewee import Case

    return Case(None, [(condition, then)], otherwise)
