"""Privacy requests about a person: export everything stored about them, or erase it
(GDPR articles 15 and 17).

The person of a contact is the contact plus the leads that were converted into it (same
human, earlier record); the person of a lead is the lead. Each also includes the records
merged into them earlier (found through their "merge" audit entries), whose audit
history still names the person.

Erasing anonymises instead of deleting: the rows keep their ids, so deals, pipelines and
reports keep their numbers, but names become "Erased", addresses and free text are
cleared, and the old/new values of their audit entries are blanked. The erase itself is
audited with counts only. Signal (after commit): ``<entity>_erased(record_id=..., record=...,
actor=...)``.

Plugins that store personal data of their own (chat transcripts, scores) take part through
the hooks ``crm_privacy_export`` (their sections under ``plugins`` of the export; a failing
one is named under ``errors``) and ``crm_privacy_erase`` (in the erase's transaction; a
failing one refuses the whole erase with ``plugin_data.PluginDataError``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import peewee

from crmcore import db, signals
from crmcore.db import utcnow
from crmcore.entities import service
from crmcore.entities.models import Activity, AuditEntry, Contact, Deal, Lead, Note, Task
from crmcore.entities.plugin_data import add_counts, call_reporting, call_strict

#: What erasing sets on the person's own records.
ERASED_VALUES: dict[type, dict[str, Any]] = {
    Contact: {"first_name": "Erased", "last_name": "", "email": None, "emails": [], "phone": None, "phones": [], "job_title": None, "timezone": None, "language": None, "consent_email": False, "consent_sms": False, "custom": {}},
    Lead: {"name": "Erased", "email": None, "phone": None, "company_name": None, "budget": None, "authority": None, "need": None, "timeline": None, "custom": {}},
}
#: What erasing sets on the activities, notes and tasks linked to the person (free text).
ERASED_TEXT: dict[type, dict[str, Any]] = {
    Activity: {"subject": "", "content": "", "outcome": None, "next_step": None},
    Note: {"body": ""},
    Task: {"title": "Erased"},
}
#: Audit change keys that hold no personal data (ids, counts) and survive the blanking.
AUDIT_KEEP = {"merged_id", "moved"}

for _entity in ("contact", "lead"):
    signals.signal(f"{_entity}_erased", f"A {_entity}'s personal data was erased (`record_id`, `record`).")


@dataclass(frozen=True)
class History:
    """The audit entries of one record: ``entity``/``entity_id`` with audit ids from
    ``first`` to ``last`` (None: open). The bounds matter because a deleted record's id
    can be given to a new record (SQLite reuses the highest rowid), whose history must
    not be exported to, or blanked for, somebody else."""

    entity: str
    entity_id: int
    first: int = 0
    last: int | None = None

    def __contains__(self, entry: AuditEntry) -> bool:
        return entry.entity == self.entity and entry.entity_id == self.entity_id and entry.id >= self.first and (self.last is None or entry.id <= self.last)


def histories(entity: str, ids: Iterable[int]) -> list[History]:
    """Histories of existing records: from their (latest) "create" entry on."""
    ids = sorted(set(ids))
    if not ids:
        return []
    created = dict(
        AuditEntry.select(AuditEntry.entity_id, peewee.fn.MAX(AuditEntry.id))
        .where((AuditEntry.entity == entity) & (AuditEntry.action == "create") & AuditEntry.entity_id.in_(ids))
        .group_by(AuditEntry.entity_id)
        .tuples()
    )
    return [History(entity, i, created.get(i, 0)) for i in ids]


def with_merged(found: list[History]) -> list[History]:
    """``found`` plus the histories of the records merged into them, transitively (a
    merged record's history ends with the kept record's "merge" entry)."""
    result, frontier = list(found), list(found)
    while frontier:
        ids_by_entity: dict[str, set[int]] = {}
        for h in frontier:
            ids_by_entity.setdefault(h.entity, set()).add(h.entity_id)
        merged = []
        for entity, ids in ids_by_entity.items():
            merges = AuditEntry.select().where((AuditEntry.entity == entity) & (AuditEntry.action == "merge") & AuditEntry.entity_id.in_(sorted(ids)))
            for entry in merges:
                value = (entry.changes or {}).get("merged_id")
                if not (any(entry in h for h in frontier) and isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)):
                    continue
                created = (
                    AuditEntry.select(peewee.fn.MAX(AuditEntry.id))
                    .where((AuditEntry.entity == entity) & (AuditEntry.entity_id == value[1]) & (AuditEntry.action == "create") & (AuditEntry.id < entry.id))
                    .scalar()
                )
                merged.append(History(entity, value[1], created or 0, entry.id))
        result += merged
        frontier = merged
    return result


@dataclass
class Person:
    """The records that hold one person's data."""

    record: Any
    contact_ids: set[int] = field(default_factory=set)  # existing contacts
    lead_ids: set[int] = field(default_factory=set)  # existing leads
    own_histories: list[History] = field(default_factory=list)  # theirs and of merged ones

    @classmethod
    def of(cls, record: Any) -> Person:
        person = cls(record)
        if isinstance(record, Contact):
            person.contact_ids = {record.id}
            person.lead_ids = {i for (i,) in Lead.select(Lead.id).where(Lead.contact == record.id).tuples()}
        else:
            person.lead_ids = {record.id}
        person.own_histories = with_merged(histories("contact", person.contact_ids) + histories("lead", person.lead_ids))
        return person

    def linked(self, model: type) -> peewee.ModelSelect:
        """Rows of ``model`` (activities, notes, tasks, deals) about this person."""
        cond = model.lead.in_(sorted(self.lead_ids)) if self.lead_ids else None
        if self.contact_ids:
            by_contact = model.contact.in_(sorted(self.contact_ids))
            cond = by_contact if cond is None else (cond | by_contact)
        return model.select().where(cond).order_by(model.id)

    def audit_entries(self, linked_ids: dict[str, list[int]]) -> list[AuditEntry]:
        """Audit entries of the person's records and of their linked records."""
        wanted = list(self.own_histories)
        for entity, ids in linked_ids.items():
            wanted += histories(entity, ids)
        by_key: dict[tuple[str, int], list[History]] = {}
        for h in wanted:
            by_key.setdefault((h.entity, h.entity_id), []).append(h)
        cond = None
        for entity in {h.entity for h in wanted}:
            part = (AuditEntry.entity == entity) & AuditEntry.entity_id.in_(sorted({h.entity_id for h in wanted if h.entity == entity}))
            cond = part if cond is None else (cond | part)
        if cond is None:
            return []
        candidates = AuditEntry.select().where(cond).order_by(AuditEntry.id)
        return [e for e in candidates if any(e in h for h in by_key.get((e.entity, e.entity_id), ()))]


def as_dict(record: Any) -> dict[str, Any]:
    """A row as JSON-ready data (foreign keys as ``<name>_id``, no tenant)."""
    out = {}
    for f in type(record)._meta.sorted_fields:
        if f.name == "tenant":
            continue
        key = f.name + "_id" if isinstance(f, peewee.ForeignKeyField) else f.name
        out[key] = service._plain(getattr(record, key))
    return out


def _entity(record: Any) -> str:
    return "contact" if isinstance(record, Contact) else "lead"


def _person_args(record: Any, person: Person) -> dict[str, Any]:
    """The arguments of the privacy hooks. Only existing records: a merged record's plugin
    data moved to the kept one (crm_merge_records), and its id may since belong to
    somebody else (SQLite reuses the highest rowid)."""
    return {
        "tenant": db.current_tenant(), "entity": _entity(record), "record_id": record.id,
        "lead_ids": sorted(person.lead_ids), "contact_ids": sorted(person.contact_ids),
    }


def plugin_sections(record: Any, person: Person) -> tuple[dict[str, Any], dict[str, str]]:
    """The plugins' export sections by name, and ``{plugin: message}`` for plugins whose
    hook failed (or gave something that is not a list of sections, or a taken name)."""
    from crmcore.contrib import PrivacySection

    answers, errors = call_reporting("crm_privacy_export", **_person_args(record, person))
    sections: dict[str, Any] = {}
    for plugin, answer in answers:
        items = answer if isinstance(answer, list) else [answer]
        if not all(isinstance(s, PrivacySection) for s in items) or any(s.name in sections for s in items):
            errors[plugin] = "crm_privacy_export gave something other than PrivacySections with new names; left out"
            continue
        sections.update({s.name: s.data for s in items})
    return sections, errors


def export(record: Any) -> dict[str, Any]:
    """Everything stored about the person of ``record`` (a contact or a lead), and an
    "export" audit entry saying who took it."""
    entity = _entity(record)
    person = Person.of(record)
    linked = {name: list(person.linked(model)) for name, model in (("activities", Activity), ("notes", Note), ("tasks", Task), ("deals", Deal))}
    linked_ids = {model_name: [r.id for r in linked[key]] for key, model_name in (("activities", "activity"), ("notes", "note"), ("tasks", "task"))}
    data: dict[str, Any] = {
        "entity": entity,
        "exported_at": utcnow().isoformat(),
        entity: {**as_dict(record), "tags": service.tag_names(entity, [record.id])[record.id]},
        "leads": [as_dict(lead) for lead in Lead.select().where(Lead.id.in_(sorted(person.lead_ids - ({record.id} if entity == "lead" else set())))).order_by(Lead.id)],
        **{key: [as_dict(r) for r in rows] for key, rows in linked.items()},
        "tags": service.tag_names(entity, [record.id])[record.id],
        "audit": [as_dict(entry) for entry in person.audit_entries(linked_ids)],
    }
    data["plugins"], data["errors"] = plugin_sections(record, person)
    service.audit(entity, record.id, "export", {})
    return data


def erase(record: Any) -> dict[str, int]:
    """Anonymise the person of ``record`` (a contact or a lead); returns counts per table
    (plugins' tables included). Raises :class:`PluginDataError` when a plugin's
    ``crm_privacy_erase`` fails (crmcore.entities.plugin_data): then nothing is erased."""
    entity = _entity(record)
    now = utcnow()
    counts: dict[str, int] = {}
    with db.atomic():
        person = Person.of(record)
        # Plugins first: their refusal rolls back before the core has written anything.
        add_counts(counts, call_strict("crm_privacy_erase", **_person_args(record, person)), "crm_privacy_erase")
        linked_ids = {}
        for model, values in ERASED_TEXT.items():
            ids = [r.id for r in person.linked(model).select(model.id)]
            linked_ids[service.ENTITY_NAMES[model]] = ids
            if ids:
                counts[model._meta.table_name.removeprefix("crm_")] = model.update(**values, version=model.version + 1, updated_at=now).where(model.id.in_(ids)).execute()
        blanked = 0
        for entry in person.audit_entries(linked_ids):
            changes = {key: (value if key in AUDIT_KEEP else [None, None]) for key, value in (entry.changes or {}).items()}
            if changes != entry.changes:
                blanked += AuditEntry.update(changes=changes).where(AuditEntry.id == entry.id).execute()
        counts["audit"] = blanked
        for model, ids in ((Contact, person.contact_ids), (Lead, person.lead_ids)):
            if ids:
                counts[model._meta.table_name.removeprefix("crm_")] = model.update(**ERASED_VALUES[model], version=model.version + 1, updated_at=now).where(model.id.in_(sorted(ids))).execute()
        service.audit(entity, record.id, "erase", {"erased": [None, counts]})
        for key, value in ERASED_VALUES[type(record)].items():
            setattr(record, key, value)
        record.version += 1
        record.updated_at = now
        user, token = service.actor()
        signals.send(f"{entity}_erased", db.current_tenant(), record_id=record.id, record=record, actor=user or token)
    return counts
