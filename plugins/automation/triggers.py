"""The core's facts as automation triggers (this plugin's own ``crm_automation_triggers``)."""

from __future__ import annotations

from typing import Any

from crm_plugins.automation.contrib import AutomationTrigger, TriggerEvent

ENTITIES = ("lead", "contact", "company", "deal")


def _same(a: Any, b: Any) -> bool:
    return str(a) == str(b) if a is not None and b is not None else a is b


def _created(entity: str = "", record: Any = None, **_: Any) -> TriggerEvent | None:
    return TriggerEvent(entity, record.id) if entity in ENTITIES and record is not None else None


def _updated(entity: str = "", record: Any = None, changes: dict | None = None, **_: Any) -> TriggerEvent | None:
    if entity not in ENTITIES or record is None:
        return None
    plain = {k: list(v) for k, v in (changes or {}).items()}
    return TriggerEvent(entity, record.id, {"changes": plain, "changed": sorted(plain)})


def _updated_matches(options: dict[str, Any], event: TriggerEvent) -> bool:
    field = options.get("field")
    if not field:
        return True
    change = event.facts.get("changes", {}).get(field) or event.facts.get("changes", {}).get(field.removesuffix("_id"))
    if change is None:
        return False
    if "from" in options and not _same(change[0], options["from"]):
        return False
    return not ("to" in options and not _same(change[1], options["to"]))


def _stage_changed(deal: Any = None, from_stage_id: Any = None, to_stage_id: Any = None, **_: Any) -> TriggerEvent | None:
    return TriggerEvent("deal", deal.id, {"from_stage_id": from_stage_id, "to_stage_id": to_stage_id}) if deal is not None else None


def _stage_matches(options: dict[str, Any], event: TriggerEvent) -> bool:
    return all(_same(event.facts.get(key), options[key]) for key in ("from_stage_id", "to_stage_id") if options.get(key) not in (None, ""))


def _converted(lead: Any = None, contact: Any = None, deal: Any = None, **_: Any) -> TriggerEvent | None:
    if lead is None:
        return None
    return TriggerEvent("lead", lead.id, {"contact_id": getattr(contact, "id", None), "deal_id": getattr(deal, "id", None)})


def _score_crossed(lead_id: Any = None, threshold: Any = None, old: Any = None, new: Any = None, grade: Any = None, **_: Any) -> TriggerEvent | None:
    return TriggerEvent("lead", int(lead_id), {"threshold": threshold, "old": old, "new": new, "grade": grade}) if lead_id else None


def _threshold_matches(options: dict[str, Any], event: TriggerEvent) -> bool:
    wanted = options.get("threshold")
    return wanted in (None, "") or float(event.facts.get("threshold") or 0) == float(wanted)


CORE_TRIGGERS = (
    AutomationTrigger("record_created", "entity_created", "A record is created", ENTITIES, _created),
    AutomationTrigger("record_updated", "entity_updated", "A record is updated", ENTITIES, _updated,
                      options={"field": "only when this field changed", "from": "…from this value", "to": "…to this value"},
                      matches=_updated_matches),
    AutomationTrigger("deal_stage_changed", "deal_stage_changed", "A deal moves to another stage", ("deal",), _stage_changed,
                      options={"from_stage_id": "only from this stage", "to_stage_id": "only to this stage"}, matches=_stage_matches),
    AutomationTrigger("lead_converted", "lead_converted", "A lead is converted", ("lead",), _converted),
)

#: Offered when the tenant has the scoring plugin on (its signal).
SCORE_TRIGGER = AutomationTrigger(
    "lead_score_crossed", "lead_score_threshold_crossed", "A lead's score crosses a threshold (scoring)", ("lead",), _score_crossed,
    options={"threshold": "only this threshold (one of the scoring plugin's thresholds)"}, matches=_threshold_matches)
