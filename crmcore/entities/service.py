"""The one write path for the shared entities: used by the API, the web pages, imports
and plugins alike, so every change is validated the same way, audited, versioned for
ETags and announced by signals after commit.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any, Iterable

import peewee

from crmcore import db, signals
from crmcore.db import utcnow
from crmcore.entities.context import Context, resolve

# Conflict and StaleVersion live in crmcore.entities.errors with the other domain
# errors; they stay importable from here, where plugins have always found them.
from crmcore.entities.errors import Conflict, NotFound, StaleVersion  # noqa: F401
from crmcore.entities.models import (
    Activity,
    AuditEntry,
    Company,
    Contact,
    CustomField,
    Deal,
    DealStageChange,
    Lead,
    Note,
    Pipeline,
    Stage,
    Tag,
    Tagging,
    Task,
)

#: The entities that carry tags (crm_tagging).
TAGGED_ENTITIES = ("lead", "contact", "company", "deal")
ENTITY_NAMES = {Lead: "lead", Contact: "contact", Company: "company", Deal: "deal", Activity: "activity", Note: "note", Task: "task", Pipeline: "pipeline", Stage: "stage", Tag: "tag", CustomField: "custom_field"}

DEFAULT_STAGES = [
    ("Lead", 10, "#8a94a6", False, False, 14),
    ("Qualified", 25, "#3b82f6", False, False, 14),
    ("Proposal", 50, "#8b5cf6", False, False, 21),
    ("Negotiation", 75, "#f59e0b", False, False, 14),
    ("Closed Won", 100, "#16a34a", True, False, None),
    ("Closed Lost", 0, "#dc2626", False, True, None),
]


def actor(ctx: Context | None = None) -> tuple[Any, Any]:
    """(user, token) of the context (default: the current one, which the request adapter
    sets from the signed-in user or API token); (None, None) in jobs and commands."""
    ctx = resolve(ctx)
    return ctx.user, ctx.token


def _plain(value: Any) -> Any:
    if isinstance(value, peewee.Model):
        return value.id
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def audit(entity: str, entity_id: int, action: str, changes: dict[str, Any] | None = None, ctx: Context | None = None) -> None:
    """Write an audit entry by the context's user, token or named actor ("cli" ...)."""
    ctx = resolve(ctx)
    AuditEntry.create(entity=entity, entity_id=entity_id, action=action, actor_user=ctx.user, actor_token=ctx.token, actor_name=ctx.actor, changes=changes or {})


def _send(tenant: Any, name: str, **data: Any) -> None:
    user, token = actor()
    data.setdefault("actor", user or token)
    signals.send(name, tenant, **data)


def entity_name(record: Any) -> str:
    return ENTITY_NAMES[type(record)]


def check_unique_email(model: type, email: str | None, exclude_id: int | None = None) -> None:
    if not email:
        return
    query = model.select().where(model.email == email)
    if exclude_id is not None:
        query = query.where(model.id != exclude_id)
    existing = query.first()
    if existing is not None:
        raise Conflict(f"a {ENTITY_NAMES[model]} with email {email} already exists", existing, "email")


def integrity_conflict(model: type, data: dict[str, Any], exclude_id: int | None = None) -> Conflict:
    """The Conflict for a unique index that refused a write: a create's duplicate email
    (found by the index alone), or two identical updates racing past
    :func:`check_unique_email`. It gets one answer, pointing at the record in the way, and never
    the database's own message (which names internal tables and the tenant's id). Called
    after the savepoint rolled back, so the lookup sees the committed winner."""
    name = ENTITY_NAMES[model]
    email = data.get("email")
    if email and model in (Lead, Contact):
        query = model.select().where(model.email == email)
        if exclude_id is not None:
            query = query.where(model.id != exclude_id)
        existing = query.first()
        if existing is not None:
            return Conflict(f"a {name} with email {email} already exists", existing, "email")
    return Conflict(f"this {name} conflicts with an existing one")


def create(model: type, data: dict[str, Any]) -> Any:
    """Create a record, audit it and send ``<entity>_created`` + ``entity_created``.

    The INSERT comes first in its transaction and the unique indexes find a duplicate
    email (no lookup before, no savepoint around it): a refused INSERT rolls the
    transaction back, and :func:`integrity_conflict` then names the record in the way.
    A record created without tags carries ``tags = []``, so the API answers without
    reading them back."""
    name = ENTITY_NAMES[model]
    tags = data.pop("tags", None)
    record = None
    try:
        with db.atomic():
            record = model.create(**data)
            if tags is not None:
                set_tags(name, record.id, tags, new_record=True)
            audit(name, record.id, "create", {k: [None, _plain(v)] for k, v in data.items()})
            tenant = db.current_tenant()
            _send(tenant, f"{name}_created", record=record)
            _send(tenant, "entity_created", entity=name, record=record)
    except peewee.IntegrityError as exc:
        if record is not None:  # not the INSERT: a bug elsewhere, not a duplicate
            raise
        raise integrity_conflict(model, data) from exc
    if tags is None and name in TAGGED_ENTITIES:
        record.tags = []
    return record


def _field_changes(record: Any, data: dict[str, Any]) -> dict[str, list[Any]]:
    """field -> [stored, new] for each value of ``data`` that differs from ``record``'s."""
    fields = type(record)._meta.fields
    changes = {k: [_plain(getattr(record, k + "_id" if isinstance(fields.get(k), peewee.ForeignKeyField) else k)), _plain(v)] for k, v in data.items()}
    return {k: v for k, v in changes.items() if v[0] != v[1]}


def _reread_locked(record: Any) -> Any:
    """The stored row of ``record``, locked until the transaction ends (FOR UPDATE on
    PostgreSQL; on SQLite the transaction holds the database's write lock already)."""
    model = type(record)
    query = model.select().where(model.id == record.id)
    if db.is_postgres():
        query = query.for_update()
    return query.get_or_none()


def update(record: Any, data: dict[str, Any], if_version: int | None = None) -> dict[str, list[Any]]:
    """Apply ``data``; raise StaleVersion when ``if_version`` is not the stored version.

    The version check is in the UPDATE's WHERE clause, so two concurrent writers cannot
    both win. Without ``if_version`` the last writer wins (docs/api.md): when the row
    changed since ``record`` was read, it is read again, locked, and ``data`` applied on
    top of what is stored (``record`` is refreshed). Returns the changes as field ->
    [old, new] (empty: nothing written).
    """
    model = type(record)
    name = ENTITY_NAMES[model]
    tags = data.pop("tags", None)
    if if_version is not None and if_version != record.version:
        raise StaleVersion(f"{name} {record.id} is at version {record.version}, not {if_version}")
    changes = _field_changes(record, data)
    with db.atomic():
        if "email" in changes and model in (Lead, Contact):
            check_unique_email(model, data.get("email"), exclude_id=record.id)
        tag_change = None
        if tags is not None:
            tag_change = set_tags(name, record.id, tags)
        if not changes and not tag_change:
            return {}
        values = dict(data)
        if hasattr(model, "updated_at"):
            values["updated_at"] = utcnow()
        values["version"] = model.version + 1
        for _attempt in range(3):
            try:
                with db.atomic():
                    count = model.update(**values).where((model.id == record.id) & (model.version == record.version)).execute()
            except peewee.IntegrityError as exc:
                raise integrity_conflict(model, data, exclude_id=record.id) from exc
            if count or if_version is not None:
                break
            # Someone else wrote meanwhile and the caller named no version: take the
            # stored row (locked now, so the next try cannot miss) and write over it.
            stored = _reread_locked(record)
            if stored is None:
                raise NotFound(f"{name} {record.id} no longer exists")
            record.__data__.update(stored.__data__)
            record.__rel__.clear()
            changes = _field_changes(record, data)
            if "email" in changes and model in (Lead, Contact):
                check_unique_email(model, data.get("email"), exclude_id=record.id)
            if not changes and not tag_change:
                return {}
        if count == 0:
            raise StaleVersion(f"{name} {record.id} was changed by someone else meanwhile")
        for key, value in data.items():
            setattr(record, key, value)
        record.version += 1
        if hasattr(model, "updated_at"):
            record.updated_at = values["updated_at"]
        if tag_change:
            changes["tags"] = tag_change
        audit(name, record.id, "update", changes)
        tenant = db.current_tenant()
        _send(tenant, f"{name}_updated", record=record, changes=changes)
        _send(tenant, "entity_updated", entity=name, record=record, changes=changes)
    return changes


def delete(record: Any, if_version: int | None = None) -> None:
    model = type(record)
    name = ENTITY_NAMES[model]
    if if_version is not None and if_version != record.version:
        raise StaleVersion(f"{name} {record.id} is at version {record.version}, not {if_version}")
    with db.atomic():
        if name in TAGGED_ENTITIES:
            Tagging.delete().where((Tagging.entity == name) & (Tagging.entity_id == record.id)).execute()
        try:
            with db.atomic():
                record.delete_instance()
        except peewee.IntegrityError as exc:
            raise Conflict(f"this {name} is still in use") from exc
        audit(name, record.id, "delete", {})
        tenant = db.current_tenant()
        _send(tenant, f"{name}_deleted", record_id=record.id, record=record)
        _send(tenant, "entity_deleted", entity=name, record_id=record.id, record=record)


# --------------------------------------------------------------------------- tags


def tag_names(entity: str, entity_ids: Iterable[int]) -> dict[int, list[str]]:
    """Tag names per record id, in one query."""
    ids = list(entity_ids)
    out: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = (
        Tagging.select(Tagging.entity_id, Tag.name)
        .join(Tag, on=(Tagging.tag == Tag.id))
        .where((Tagging.entity == entity) & (Tagging.entity_id.in_(ids)))
        .order_by(Tag.name)
        .tuples()
    )
    for entity_id, name in rows:
        out[entity_id].append(name)
    return out


def set_tags(entity: str, entity_id: int, names: Iterable[str], new_record: bool = False) -> list[Any] | None:
    """Make the record's tags exactly ``names`` (creating missing tags); [old, new] or None.
    ``new_record``: the record was just created, so it has no tags to read first."""
    wanted = sorted({n.strip() for n in names if n and n.strip()})
    current = [] if new_record else tag_names(entity, [entity_id])[entity_id]
    if wanted == current:
        return None
    tags = tags_named(wanted)
    Tagging.delete().where((Tagging.entity == entity) & (Tagging.entity_id == entity_id)).execute()
    for n in wanted:
        Tagging.create(tag=tags[n], entity=entity, entity_id=entity_id)
    return [current, wanted]


def tags_named(names: Iterable[str]) -> dict[str, Tag]:
    """name -> Tag for each of ``names``, creating those that do not exist yet.

    Two writers may create the same new tag at once (two leads saved with a new tag):
    INSERT ... ON CONFLICT DO NOTHING and read back, so the second one takes the first
    one's tag instead of failing on the unique name (PostgreSQL; SQLite's write lock
    serialises them anyway)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    tags = {t.name: t for t in Tag.select().where(Tag.name.in_(wanted))}
    missing = [n for n in wanted if n not in tags]
    if missing:
        Tag.insert_many([{"name": n} for n in missing]).on_conflict_ignore().execute()
        tags.update({t.name: t for t in Tag.select().where(Tag.name.in_(missing))})
    return tags


def add_tag(entity: str, entity_ids: Iterable[int], name: str) -> int:
    """Add one tag to many records (bulk action); returns how many got it."""
    tag = tags_named([name])[name]
    rows = [{"tag": tag.id, "entity": entity, "entity_id": i, "tenant": db.require_tenant_id()} for i in entity_ids]
    if not rows:
        return 0
    return Tagging.insert_many(rows).on_conflict_ignore().execute() and len(rows)


# --------------------------------------------------------------------------- pipelines


def ensure_default_pipeline(tenant: Any) -> Pipeline:
    """The tenant's default sales pipeline, created with its stages the first time."""
    with db.tenant_context(tenant), db.atomic():
        pipeline = Pipeline.get_or_none(Pipeline.is_default == True)  # noqa: E712
        if pipeline is not None:
            return pipeline
        pipeline = Pipeline.create(name="Sales", is_default=True, order=0)
        for order, (name, prob, colour, won, lost, days) in enumerate(DEFAULT_STAGES):
            Stage.create(pipeline=pipeline, name=name, order=order, probability=prob, colour=colour, is_won=won, is_lost=lost, expected_days=days)
        return pipeline


def move_deal(deal: Deal, stage: Stage, *, position: float | None = None, lost_reason: str | None = None, if_version: int | None = None) -> Deal:
    """Move a deal to ``stage`` (and/or a position): stage history, probability default,
    closed_at for won/lost stages, audit and ``deal_stage_changed``."""
    if stage.pipeline_id != deal.pipeline_id:
        data: dict[str, Any] = {"pipeline": stage.pipeline_id}
    else:
        data = {}
    old_stage_id = deal.stage_id
    entered = deal.stage_entered_at
    now = utcnow()
    if stage.id != old_stage_id:
        data.update(stage=stage.id, probability=stage.probability, stage_entered_at=now)
        data["closed_at"] = now if (stage.is_won or stage.is_lost) else None
        data["lost_reason"] = lost_reason if stage.is_lost else None
    if position is not None:
        data["position"] = position
    with db.atomic():
        update(deal, data, if_version=if_version)
        if stage.id != old_stage_id:
            user, token = actor()
            # "Who": the signed-in user, or the user an API token belongs to.
            changed_by = user.id if user is not None else getattr(token, "user_id", None)
            seconds = int((now - entered).total_seconds()) if entered else None
            DealStageChange.create(deal=deal, from_stage=old_stage_id, to_stage=stage.id, changed_by=changed_by, changed_at=now, seconds_in_previous=seconds)
            audit("deal", deal.id, "stage_change", {"stage": [old_stage_id, stage.id]})
            _send(db.current_tenant(), "deal_stage_changed", deal=deal, from_stage_id=old_stage_id, to_stage_id=stage.id)
    return deal


# --------------------------------------------------------------------------- activities and bulk tags


def log_activity(data: dict[str, Any]) -> Activity:
    """Create an activity; an inbound or outbound one on a lead moves the lead's
    ``last_contact_at`` forward (through :func:`update`, so the lead's audit shows it).
    ``activity_created`` is the "activity logged" signal."""
    with db.atomic():
        activity = create(Activity, data)
        touch_last_contact(activity)
    return activity


def touch_last_contact(activity: Activity) -> None:
    """Move the linked lead's ``last_contact_at`` to the activity's time if it is later
    (never backwards: logging an old call does not make the lead look fresher)."""
    if not activity.direction or not activity.lead_id or activity.occurred_at is None:
        return
    lead = Lead.get_or_none(Lead.id == activity.lead_id)
    if lead is not None and (lead.last_contact_at is None or lead.last_contact_at < activity.occurred_at):
        update(lead, {"last_contact_at": activity.occurred_at})


TAGGABLE_MODELS = {"lead": Lead, "contact": Contact, "company": Company, "deal": Deal}


def apply_tag(tag: Tag, entity: str, entity_ids: Iterable[int], remove: bool = False) -> list[int]:
    """Add ``tag`` to (or with ``remove`` take it from) many records of one kind, in a
    constant number of queries. Each record that changes gets a new version (its ETag
    changes), an audit entry with its tags [old, new], and ``<entity>_updated`` +
    ``entity_updated``. The caller checks that the ids are visible. Returns the changed ids.
    """
    model = TAGGABLE_MODELS[entity]
    ids = sorted(set(entity_ids))
    if not ids:
        return []
    with db.atomic():
        before = tag_names(entity, ids)
        changed = [i for i in ids if (tag.name in before[i]) == remove]
        if not changed:
            return []
        tenant_id = db.require_tenant_id()
        if remove:
            Tagging.delete().where((Tagging.tag == tag.id) & (Tagging.entity == entity) & (Tagging.entity_id.in_(changed))).execute()
        else:
            rows = [{"tenant": tenant_id, "tag": tag.id, "entity": entity, "entity_id": i} for i in changed]
            for batch in peewee.chunked(rows, 200):  # SQLite limits bound parameters
                Tagging.insert_many(batch).on_conflict_ignore().execute()
        now = utcnow()
        model.update(version=model.version + 1, updated_at=now).where(model.id.in_(changed)).execute()
        changes = {i: {"tags": [before[i], sorted(set(before[i]) ^ {tag.name})]} for i in changed}
        ctx = resolve(None)
        entries = [{"tenant": tenant_id, "entity": entity, "entity_id": i, "action": "update", "actor_user": ctx.user, "actor_token": ctx.token, "actor_name": ctx.actor, "changes": changes[i], "at": now} for i in changed]
        for batch in peewee.chunked(entries, 100):
            AuditEntry.insert_many(batch).execute()
        tenant = db.current_tenant()
        for record in model.select().where(model.id.in_(changed)):
            _send(tenant, f"{entity}_updated", record=record, changes=changes[record.id])
            _send(tenant, "entity_updated", entity=entity, record=record, changes=changes[record.id])
    return changed
