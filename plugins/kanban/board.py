"""Board data: columns, their totals and first cards, in a constant number of queries.

A deal board has one column per stage of a pipeline (in order); the lead board one per
lead status. Opening a board costs the same number of queries whatever the number of
deals: the stages (1), the totals of every column (one GROUP BY), the first page of every
column (one query: a UNION ALL of one index-backed ``ORDER BY ... LIMIT`` per column), then the tags,
owners, companies and contacts of the cards on screen (one query each) and the badges
other plugins add (one hook call for the whole page). "Load more" in a column is a keyset
page on (position, id), so page 50 costs what page 1 costs.

Filters reuse the core API's own query builders (crmcore.api.deals.filtered,
crmcore.api.leads.filtered), so the board shows exactly what /api/v1/deals would, with
the same visibility rules (``agents_see_own_only``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
from collections.abc import Iterable
from typing import Any

import peewee
from flask import g

from crm_plugins.kanban.contrib import TONES, CardBadge
from crmcore import sdk
from crmcore.sdk import (
    LEAD_STATUSES,
    Company,
    Contact,
    Deal,
    DealStageChange,
    Lead,
    Pipeline,
    Stage,
    User,
    stages_of,
    utcnow,
)

log = logging.getLogger(__name__)

#: Lead statuses a card may be dragged into; "converted" only through the conversion form
#: (it creates a contact, a company and maybe a deal: more than a status).
LEAD_TARGETS = tuple(s for s in LEAD_STATUSES if s != "converted")
LEAD_STATUS_COLOURS = {"new": "#3b82f6", "contacted": "#f59e0b", "qualified": "#16a34a", "unqualified": "#8a94a6", "converted": "#8b5cf6"}
ZERO = decimal.Decimal(0)
#: What a deal card needs (not the custom fields' JSON and the rest: less to read and build).
CARD_COLUMNS = (
    Deal.id, Deal.title, Deal.value, Deal.currency, Deal.probability, Deal.pipeline, Deal.stage, Deal.position, Deal.version,
    Deal.owner, Deal.company, Deal.contact, Deal.stage_entered_at, Deal.expected_close_date, Deal.lost_reason,
)


def settings() -> dict[str, Any]:

    return dict(sdk.settings(g.tenant, "kanban"))


# --------------------------------------------------------------------------- which boards


def pipelines() -> list[Pipeline]:
    """The pipelines that get a board (setting ``pipelines``; empty: all), in order."""
    wanted = settings()["pipelines"]
    rows = list(Pipeline.select().order_by(Pipeline.order, Pipeline.name, Pipeline.id))
    if wanted:
        rows = [p for p in rows if p.name in wanted]
    return rows


def default_pipeline(rows: list[Pipeline]) -> Pipeline | None:
    """The board that opens first: the setting ``default_pipeline``, else the tenant's default."""
    name = settings()["default_pipeline"]
    for pipeline in rows:
        if name and pipeline.name == name:
            return pipeline
    for pipeline in rows:
        if pipeline.is_default:
            return pipeline
    return rows[0] if rows else None


def shown_pipeline_or_none(pipeline_id: int) -> Pipeline | None:
    return next((p for p in pipelines() if p.id == pipeline_id), None)


# --------------------------------------------------------------------------- filters


def deal_filters(args: dict[str, Any]) -> dict[str, Any]:
    """The board's filters in the terms of crmcore.api.deals.filtered."""
    out: dict[str, Any] = {k: args[k] for k in ("q", "owner_id", "tag", "min_value", "max_value") if args.get(k) is not None and args.get(k) != ""}
    if args.get("mine"):
        out["owner_id"] = sdk.current_user_id() or -1  # a bare token owns nothing
    return out


def deal_query(pipeline_id: int, args: dict[str, Any]) -> peewee.ModelSelect:
    return sdk.deal_query({**deal_filters(args), "pipeline_id": pipeline_id})


def lead_query(args: dict[str, Any]) -> peewee.ModelSelect:
    query = sdk.lead_query(deal_filters(args))
    if args.get("min_value") is not None:
        query = query.where(Lead.estimated_value >= args["min_value"])
    if args.get("max_value") is not None:
        query = query.where(Lead.estimated_value <= args["max_value"])
    return query


# --------------------------------------------------------------------------- cards


def initials(name: str) -> str:
    parts = [p for p in name.replace("@", " ").replace(".", " ").split() if p[:1].isalnum()]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


def _names(model: type, ids: Iterable[int | None]) -> dict[int, str]:

    return sdk.display_names(model, set(ids))


def _owners(ids: Iterable[int | None]) -> dict[int, dict[str, Any]]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    out = {}
    for user_id, name, email in User.select(User.id, User.name, User.email).where(User.id.in_(wanted)).tuples():
        label = name or email
        out[user_id] = {"id": user_id, "name": label, "initials": initials(label)}
    return out


def badges(entity: str, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Other plugins' badges for these cards: one contained hook call for the batch."""

    out: dict[int, list[tuple[int, dict[str, Any]]]] = {i: [] for i in ids}
    if not ids:
        return {}
    for plugin_name, contributed in sdk.call_hook(g.tenant, "crm_kanban_card_badges", tenant=g.tenant, entity=entity, record_ids=list(ids)):
        for badge in contributed or ():
            if not isinstance(badge, CardBadge):
                log.warning("plugin %r: crm_kanban_card_badges returned %r, not a CardBadge; skipped", plugin_name, type(badge).__name__)
                continue
            if badge.record_id in out:
                tone = badge.tone if badge.tone in TONES else "neutral"
                out[badge.record_id].append((badge.order, {"label": badge.label, "title": badge.title, "tone": tone, "plugin": plugin_name}))
    return {i: [b for _, b in sorted(items, key=lambda x: x[0])] for i, items in out.items()}


def _iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0).isoformat() + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    return None


def deal_cards(deals: list[Deal], stages: dict[int, Stage]) -> list[dict[str, Any]]:
    """Card data for deals (one query each for tags, owners, companies, contacts, badges)."""
    if not deals:
        return []
    ids = [d.id for d in deals]
    tags = sdk.tag_names("deal", ids)
    owners = _owners(d.owner_id for d in deals)
    companies = _names(Company, (d.company_id for d in deals))
    contacts = _names(Contact, (d.contact_id for d in deals))
    extra = badges("deal", ids)
    now = utcnow()
    out = []
    for d in deals:
        stage = stages.get(d.stage_id)
        days = max(0, (now - d.stage_entered_at).days) if d.stage_entered_at else 0
        expected = stage.expected_days if stage is not None else None
        is_open = stage is not None and not stage.is_won and not stage.is_lost
        out.append(
            {
                "id": d.id,
                "entity": "deal",
                "title": d.title,
                "value": str(d.value),
                "currency": d.currency,
                "probability": d.probability,
                "pipeline_id": d.pipeline_id,
                "stage_id": d.stage_id,
                "column": str(d.stage_id),
                "position": d.position,
                "version": d.version,
                "etag": sdk.etag_for(d),
                "status": ("won" if stage.is_won else "lost" if stage.is_lost else "open") if stage else "open",
                "owner": owners.get(d.owner_id),
                "company": {"id": d.company_id, "name": companies[d.company_id]} if d.company_id in companies else None,
                "contact": {"id": d.contact_id, "name": contacts[d.contact_id]} if d.contact_id in contacts else None,
                "tags": tags.get(d.id, []),
                "days_in_stage": days,
                "expected_days": expected,
                "overdue": bool(is_open and expected is not None and days > expected),
                "stage_entered_at": _iso(d.stage_entered_at),
                "expected_close_date": _iso(d.expected_close_date),
                "lost_reason": d.lost_reason,
                "badges": extra.get(d.id, []),
                "url": f"/app/deals/{d.id}",
            }
        )
    return out


def lead_cards(leads: list[Lead]) -> list[dict[str, Any]]:
    if not leads:
        return []
    ids = [lead.id for lead in leads]
    tags = sdk.tag_names("lead", ids)
    owners = _owners(lead.owner_id for lead in leads)
    extra = badges("lead", ids)
    now = utcnow()
    return [
        {
            "id": lead.id,
            "entity": "lead",
            "title": lead.name,
            "value": str(lead.estimated_value) if lead.estimated_value is not None else None,
            "currency": None,
            "status": lead.status,
            "column": lead.status,
            "version": lead.version,
            "etag": sdk.etag_for(lead),
            "owner": owners.get(lead.owner_id),
            "company": {"id": lead.company_id, "name": lead.company_name} if lead.company_name else None,
            "contact": {"id": None, "name": lead.email} if lead.email else None,
            "tags": tags.get(lead.id, []),
            "days_in_stage": max(0, (now - (lead.updated_at or lead.created_at)).days),
            "expected_days": None,
            "overdue": False,
            "badges": extra.get(lead.id, []),
            "url": f"/app/leads/{lead.id}",
        }
        for lead in leads
    ]


# --------------------------------------------------------------------------- columns


def _money(value: Any) -> str:
    return str((decimal.Decimal(value) if value is not None else ZERO).quantize(decimal.Decimal("0.01")))


def _first_pages(query: peewee.ModelSelect, model: type, partition: Any, keys: list[Any], order: list[Any], per_column: int, columns: tuple[Any, ...] = ()) -> list[Any]:
    """The first ``per_column + 1`` rows of every column of ``query`` (the extra row tells
    whether the column has more), in one query: a UNION ALL of one ``ORDER BY ... LIMIT``
    per column, each of which the (tenant, stage, position) index answers by reading just
    those rows -- so the cost follows the columns shown, not the deals in them (a
    ROW_NUMBER() OVER (PARTITION BY ...) window would number every deal of the board)."""
    if not keys:
        return []
    parts = []
    for index, key in enumerate(keys):
        page = query.where(partition == key).select(model.id.alias("rid")).order_by(*order).limit(per_column + 1).alias(f"col{index}")
        parts.append(peewee.Select(from_list=[page], columns=[page.c.rid]))
    union = parts[0]
    for part in parts[1:]:
        union = union + part  # UNION ALL
    return list(model.select(*columns).where(model.id.in_(union)).order_by(partition, *order))


def _cursor(values: list[Any]) -> str:
    return sdk.encode_cursor(values)


def deal_board(pipeline: Pipeline, args: dict[str, Any], per_column: int) -> dict[str, Any]:
    """The whole board of a pipeline: columns with totals and their first cards."""
    stages = stages_of([pipeline.id])[pipeline.id]
    by_id = {s.id: s for s in stages}
    query = deal_query(pipeline.id, args)
    totals = {
        stage_id: (count, value, weighted)
        for stage_id, count, value, weighted in query.select(
            Deal.stage, peewee.fn.COUNT(Deal.id), peewee.fn.SUM(Deal.value), peewee.fn.SUM(Deal.value * Deal.probability / 100.0)
        )
        .group_by(Deal.stage)
        .tuples()
    }
    rows = _first_pages(query, Deal, Deal.stage, [s.id for s in stages], [Deal.position, Deal.id], per_column, CARD_COLUMNS) if per_column > 0 else []
    grouped: dict[int, list[Deal]] = {s.id: [] for s in stages}
    for deal in rows:
        grouped.setdefault(deal.stage_id, []).append(deal)
    shown = [d for s in stages for d in grouped[s.id][:per_column]]
    cards = {c["id"]: c for c in deal_cards(shown, by_id)}
    limits, default_wip = settings()["wip_limits"], settings()["wip_limit"]
    columns = []
    for stage in stages:
        count, value, weighted = totals.get(stage.id, (0, ZERO, ZERO))
        page = grouped[stage.id]
        more = len(page) > per_column
        page = page[:per_column]
        wip = limits.get(stage.name, default_wip if not (stage.is_won or stage.is_lost) else None)
        columns.append(
            {
                "id": str(stage.id),
                "stage_id": stage.id,
                "name": stage.name,
                "colour": stage.colour,
                "probability": stage.probability,
                "expected_days": stage.expected_days,
                "is_won": stage.is_won,
                "is_lost": stage.is_lost,
                "count": count,
                "value": _money(value),
                "weighted_value": _money(weighted),
                "wip_limit": wip,
                "over_wip_limit": bool(wip is not None and not stage.is_won and not stage.is_lost and count > wip),
                "cards": [cards[d.id] for d in page],
                "next_cursor": _cursor([page[-1].position, page[-1].id]) if more and page else None,
            }
        )
    return {"entity": "deal", "pipeline": {"id": pipeline.id, "name": pipeline.name, "is_default": pipeline.is_default}, "columns": columns}


def deal_column_page(pipeline: Pipeline, stage: Stage, args: dict[str, Any], limit: int, cursor: str | None) -> dict[str, Any]:
    """More cards of one column after ``cursor`` (keyset on position, id)."""
    query = deal_query(pipeline.id, args).where(Deal.stage == stage.id)
    if cursor:
        decoded = sdk.decode_cursor(cursor)
        if len(decoded) != 2 or not isinstance(decoded[0], (int, float)) or not isinstance(decoded[1], int):
            from flask_smorest import abort

            abort(422, errors={"query": {"cursor": ["Not a valid cursor."]}})
        position, last_id = decoded
        query = query.where((Deal.position >= position) & ((Deal.position > position) | ((Deal.position == position) & (Deal.id > last_id))))
    rows = list(query.select(*CARD_COLUMNS).order_by(Deal.position, Deal.id).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"cards": deal_cards(rows, {stage.id: stage}), "next_cursor": _cursor([rows[-1].position, rows[-1].id]) if more and rows else None}


def lead_board(args: dict[str, Any], per_column: int) -> dict[str, Any]:
    query = lead_query(args)
    totals = {
        status: (count, value)
        for status, count, value in query.select(Lead.status, peewee.fn.COUNT(Lead.id), peewee.fn.SUM(Lead.estimated_value)).group_by(Lead.status).tuples()
    }
    order = [Lead.created_at.desc(), Lead.id.desc()]
    rows = _first_pages(query, Lead, Lead.status, list(LEAD_STATUSES), order, per_column) if per_column > 0 else []
    grouped: dict[str, list[Lead]] = {s: [] for s in LEAD_STATUSES}
    for lead in rows:
        grouped.setdefault(lead.status, []).append(lead)
    shown = [lead for s in LEAD_STATUSES for lead in grouped[s][:per_column]]
    cards = {c["id"]: c for c in lead_cards(shown)}
    limits, default_wip = settings()["wip_limits"], settings()["wip_limit"]
    columns = []
    for status in LEAD_STATUSES:
        count, value = totals.get(status, (0, ZERO))
        page = grouped[status]
        more = len(page) > per_column
        page = page[:per_column]
        wip = limits.get(status, default_wip if status != "converted" else None)
        columns.append(
            {
                "id": status,
                "stage_id": None,
                "name": status.capitalize(),
                "colour": LEAD_STATUS_COLOURS[status],
                "probability": None,
                "expected_days": None,
                "is_won": False,
                "is_lost": False,
                "accepts_drops": status in LEAD_TARGETS,
                "count": count,
                "value": _money(value),
                "weighted_value": _money(value),
                "wip_limit": wip,
                "over_wip_limit": bool(wip is not None and count > wip),
                "cards": [cards[lead.id] for lead in page],
                "next_cursor": _cursor([_iso(page[-1].created_at), page[-1].id]) if more and page else None,
            }
        )
    return {"entity": "lead", "pipeline": None, "columns": columns}


def lead_column_page(status: str, args: dict[str, Any], limit: int, cursor: str | None) -> dict[str, Any]:
    query = lead_query(args).where(Lead.status == status)
    if cursor:
        decoded = sdk.decode_cursor(cursor)
        try:
            created = dt.datetime.fromisoformat(str(decoded[0]).removesuffix("Z"))
            last_id = int(decoded[1])
        except (ValueError, TypeError, IndexError):
            from flask_smorest import abort

            abort(422, errors={"query": {"cursor": ["Not a valid cursor."]}})
        query = query.where((Lead.created_at <= created) & ((Lead.created_at < created) | ((Lead.created_at == created) & (Lead.id < last_id))))
    rows = list(query.order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"cards": lead_cards(rows), "next_cursor": _cursor([_iso(rows[-1].created_at), rows[-1].id]) if more and rows else None}


# --------------------------------------------------------------------------- positions


def position_between(stage_id: int, deal_id: int, before_id: int | None, after_id: int | None) -> float | None:
    """A position that puts the deal just after ``after_id`` / before ``before_id`` (cards
    of the same stage); None when neither is given (the end of the stage). Cards hidden by
    a filter keep their place: the gap used is the one next to the named neighbour."""
    others = Deal.select(Deal.position).where((Deal.stage == stage_id) & (Deal.id != deal_id))
    if after_id is not None:
        anchor = Deal.get_or_none((Deal.id == after_id) & (Deal.stage == stage_id))
        if anchor is None:
            return None
        following = others.where(Deal.position > anchor.position).order_by(Deal.position).limit(1).scalar()
        return (anchor.position + following) / 2 if following is not None else anchor.position + 1
    if before_id is not None:
        anchor = Deal.get_or_none((Deal.id == before_id) & (Deal.stage == stage_id))
        if anchor is None:
            return None
        preceding = others.where(Deal.position < anchor.position).order_by(Deal.position.desc()).limit(1).scalar()
        return (anchor.position + preceding) / 2 if preceding is not None else anchor.position - 1
    return None


def needs_respacing(position: float, stage_id: int, deal_id: int) -> bool:
    """After many moves into one gap, doubles run out of room: another card then sits at
    (almost) the same position and the order would no longer be kept."""
    return Deal.select().where((Deal.stage == stage_id) & (Deal.id != deal_id) & (Deal.position > position - 1e-9) & (Deal.position < position + 1e-9)).exists()


def respace(stage_id: int) -> None:
    """Renumber a stage's cards 1, 2, 3 ... in their order. Only the order changes, which
    no one reads but the board, so this is a plain UPDATE (no audit, no version bump)."""
    # Read all ids first: updating positions while a cursor walks the (stage, position)
    # index would make it meet the moved rows again.
    ids = [i for (i,) in Deal.select(Deal.id).where(Deal.stage == stage_id).order_by(Deal.position, Deal.id).tuples()]
    for index, deal_id in enumerate(ids, start=1):
        Deal.update(position=float(index)).where(Deal.id == deal_id).execute()


# --------------------------------------------------------------------------- metrics


def metrics(pipeline: Pipeline) -> dict[str, Any]:
    """Per stage: count, value, weighted value (open deals now), average days deals spent
    in it (from the stage history), and the conversion to the next stage (of the deals
    that reached this stage, the share that reached a later one), in four queries."""
    stages = stages_of([pipeline.id])[pipeline.id]
    totals = {
        stage_id: (count, value, weighted)
        for stage_id, count, value, weighted in Deal.select(
            Deal.stage, peewee.fn.COUNT(Deal.id), peewee.fn.SUM(Deal.value), peewee.fn.SUM(Deal.value * Deal.probability / 100.0)
        )
        .where(Deal.pipeline == pipeline.id)
        .group_by(Deal.stage)
        .tuples()
    }
    stage_ids = [s.id for s in stages]
    durations = (
        dict(
            DealStageChange.select(DealStageChange.from_stage, peewee.fn.AVG(DealStageChange.seconds_in_previous))
            .where(DealStageChange.from_stage.in_(stage_ids) & DealStageChange.seconds_in_previous.is_null(False))
            .group_by(DealStageChange.from_stage)
            .tuples()
        )
        if stage_ids
        else {}
    )
    # How far each deal got: the highest order among its current stage and every stage
    # it entered (lost stages are an end, not progress, so they do not count).
    progress = [s for s in stages if not s.is_lost]
    order_of = {s.id: s.order for s in progress}
    reached: dict[int, int] = {}
    if progress:
        progress_ids = [s.id for s in progress]
        # A deal was in a stage it entered, or left (deals start in a stage without a
        # history row), or is in now.
        entered = DealStageChange.select(DealStageChange.deal.alias("did"), DealStageChange.to_stage.alias("sid")).where(DealStageChange.to_stage.in_(progress_ids))
        left = DealStageChange.select(DealStageChange.deal.alias("did"), DealStageChange.from_stage.alias("sid")).where(DealStageChange.from_stage.in_(progress_ids))
        current = Deal.select(Deal.id.alias("did"), Deal.stage.alias("sid")).where(Deal.pipeline == pipeline.id)
        union = (entered | left | current).alias("visits")  # UNION: a deal/stage pair once
        furthest: dict[int, int] = {}
        for deal_id, stage_id in peewee.Select(from_list=[union], columns=[union.c.did, union.c.sid]).bind(Deal._meta.database).tuples():
            if stage_id in order_of:
                furthest[deal_id] = max(furthest.get(deal_id, -1), order_of[stage_id])
        for order in furthest.values():
            reached[order] = reached.get(order, 0) + 1
    out = []
    for index, stage in enumerate(stages):
        count, value, weighted = totals.get(stage.id, (0, ZERO, ZERO))
        avg = durations.get(stage.id)
        conversion = None
        if not stage.is_lost and not stage.is_won:
            later = [s for s in progress if s.order > stage.order or (s.order == stage.order and stages.index(s) > index)]
            here = sum(n for o, n in reached.items() if o >= stage.order)
            beyond = sum(n for o, n in reached.items() if o > stage.order) if later else 0
            conversion = round(beyond / here, 4) if here and later else None
        out.append(
            {
                "stage_id": stage.id,
                "name": stage.name,
                "count": count,
                "value": _money(value),
                "weighted_value": _money(weighted),
                "avg_days_in_stage": round(float(avg) / 86400, 2) if avg is not None else None,
                "conversion_to_next": conversion,
            }
        )
    return {"pipeline_id": pipeline.id, "stages": out}
