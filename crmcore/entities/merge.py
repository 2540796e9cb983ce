"""Merging duplicates: one lead, contact or company absorbs another.

Everything that points at the other record (activities, notes, tasks, deals, the contacts
of a company, the leads of a contact or company, tags) moves to the kept one; the kept
record's empty fields are filled from the other's; the other is deleted. One transaction:
a failure anywhere leaves both records as they were.

Signals (after commit, tenant as sender, plus ``actor``):

* ``<entity>_merged(record=<kept>, merged_id=<id of the deleted one>, changes={field: [old, new]})``
  and ``entity_merged(entity=..., record=..., merged_id=..., changes=...)``
* ``<entity>_deleted`` / ``entity_deleted`` for the other record, as for any delete.

Foreign keys of the core tables are moved here, before the delete. Plugins move their own
links in ``crm_merge_records``, called in the same transaction before the delete (so their
foreign keys' ON DELETE has not fired); a plugin whose hook fails refuses the whole merge
(``plugin_data.PluginDataError``): a merge that drops a plugin's links is not done.
"""

from __future__ import annotations

from typing import Any

import peewee

from crmcore import db, signals
from crmcore.db import utcnow
from crmcore.entities import service
from crmcore.entities.models import ENTITY_MODELS, Company, Contact, Lead, Tagging
from crmcore.entities.plugin_data import add_counts, call_strict

MERGEABLE = {Lead: "lead", Contact: "contact", Company: "company"}

#: Columns never copied from the other record.
NOT_FILLED = {"id", "tenant", "created_at", "updated_at", "version", "custom"}

#: (primary, further) address columns whose values are pooled rather than filled.
POOLED = {Contact: (("email", "emails"), ("phone", "phones"))}

for _name in MERGEABLE.values():
    signals.signal(f"{_name}_merged", f"Another {_name} was merged into `record` (the deleted one's id is `merged_id`).")
signals.signal("entity_merged", "A record absorbed a duplicate: `entity`, `record`, `merged_id`, `changes`.")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _references(model: type) -> list[peewee.ForeignKeyField]:
    """Foreign keys of the core tables that point at ``model`` (Linked is abstract)."""
    return [fk for fk, ref_model in model._meta.backrefs.items() if ref_model in ENTITY_MODELS]


def _move_references(model: type, kept_id: int, other_id: int) -> dict[str, int]:
    moved: dict[str, int] = {}
    now = utcnow()
    for fk in _references(model):
        ref_model = fk.model
        values: dict[Any, Any] = {fk: kept_id}
        if "version" in ref_model._meta.fields:
            values[ref_model.version] = ref_model.version + 1  # their ETags change too
        if "updated_at" in ref_model._meta.fields:
            values[ref_model.updated_at] = now
        count = ref_model.update(values).where(fk == other_id).execute()
        if count:
            key = ref_model._meta.table_name.removeprefix("crm_")
            moved[key] = moved.get(key, 0) + count
    return moved


def _move_tags(entity: str, kept_id: int, other_id: int) -> int:
    """Give the kept record the other's tags too (the other's taggings go with its delete)."""
    tag_ids = [t for (t,) in Tagging.select(Tagging.tag).where((Tagging.entity == entity) & (Tagging.entity_id == other_id)).tuples()]
    if not tag_ids:
        return 0
    tenant_id = db.require_tenant_id()
    rows = [{"tag": t, "entity": entity, "entity_id": kept_id, "tenant": tenant_id} for t in tag_ids]
    Tagging.insert_many(rows).on_conflict_ignore().execute()
    return len(tag_ids)


def _filled(kept: Any, other: Any) -> dict[str, Any]:
    """Field -> value for the kept record: its empty fields from the other, custom values
    and further addresses pooled."""
    model = type(kept)
    pooled = POOLED.get(model, ())
    skip = NOT_FILLED | {name for pair in pooled for name in pair}
    data: dict[str, Any] = {}
    for field in model._meta.sorted_fields:
        if field.name in skip or isinstance(field, peewee.BooleanField):
            continue
        attr = field.name + "_id" if isinstance(field, peewee.ForeignKeyField) else field.name
        if _empty(getattr(kept, attr)) and not _empty(getattr(other, attr)):
            data[field.name] = getattr(other, attr)
    merged_custom = {**(other.custom or {}), **(kept.custom or {})}
    if merged_custom != (kept.custom or {}):
        data["custom"] = merged_custom
    for one, many in pooled:
        primary = getattr(kept, one) or getattr(other, one)
        further = []
        for value in [*(getattr(kept, many) or []), getattr(other, one), *(getattr(other, many) or [])]:
            if value and value != primary and value not in further:
                further.append(value)
        if primary != getattr(kept, one):
            data[one] = primary
        if further != (getattr(kept, many) or []):
            data[many] = further
    return data


def merge(kept: Any, other: Any, if_version: int | None = None) -> dict[str, Any]:
    """Merge ``other`` into ``kept`` (same model, same tenant) and delete ``other``.

    Raises service.StaleVersion when ``if_version`` is not the kept record's version, and
    plugin_data.PluginDataError when a plugin's ``crm_merge_records`` fails (nothing
    changes then). Returns the audit changes: filled fields, ``merged_id``, and
    how many rows of each table moved (``moved``).
    """
    model = type(kept)
    entity = MERGEABLE[model]
    if type(other) is not model or other.id == kept.id:
        raise ValueError("merge needs two different records of one kind")
    if if_version is not None and if_version != kept.version:
        raise service.StaleVersion(f"{entity} {kept.id} is at version {kept.version}, not {if_version}")
    with db.atomic():
        moved = _move_references(model, kept.id, other.id)
        tags = _move_tags(entity, kept.id, other.id)
        if tags:
            moved["tags"] = tags
        plugins_moved = call_strict("crm_merge_records", tenant=db.current_tenant(), entity=entity, kept_id=kept.id, merged_id=other.id)
        add_counts(moved, plugins_moved, "crm_merge_records")
        data = _filled(kept, other)
        # The other goes first: its unique email may be one the kept record takes over.
        service.delete(other)
        now = utcnow()
        count = model.update(**data, updated_at=now, version=model.version + 1).where((model.id == kept.id) & (model.version == kept.version)).execute()
        if count == 0:
            raise service.StaleVersion(f"{entity} {kept.id} was changed by someone else meanwhile")
        changes = {k: [service._plain(getattr(kept, k + "_id" if isinstance(model._meta.fields[k], peewee.ForeignKeyField) else k)), service._plain(v)] for k, v in data.items()}
        for key, value in data.items():
            setattr(kept, key, value)
        kept.version += 1
        kept.updated_at = now
        changes["merged_id"] = [None, other.id]
        changes["moved"] = [None, moved]
        service.audit(entity, kept.id, "merge", changes)
        tenant = db.current_tenant()
        user, token = service.actor()
        signals.send(f"{entity}_merged", tenant, record=kept, merged_id=other.id, changes=changes, actor=user or token)
        signals.send("entity_merged", tenant, entity=entity, record=kept, merged_id=other.id, changes=changes, actor=user or token)
    return changes
