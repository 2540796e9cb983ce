"""Next best actions for leads and deals, ranked and explained.

A deal's actions come from its stored risk factors (each factor has a remedy); a lead's
from its contact history. What users did with a suggestion is recorded: a dismissed
action is never suggested again for that record, a done one (or one turned into a task)
not for ``done_snooze_days``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from crm_plugins.insights.models import ActionDecision, DealRisk
from crmcore import sdk
from crmcore.sdk import Deal, Lead, Task

DECISIONS = ("done", "dismissed", "task")
OPEN_LEAD_STATUSES = ("new", "contacted", "qualified")
#: risk factor -> (action key, kind, title)
DEAL_ACTIONS = {
    "stale_in_stage": ("call_to_unblock", "call", "Call to move it on"),
    "no_activity": ("send_follow_up", "email", "Send a follow-up"),
    "close_date_passed": ("update_close_date", "update", "Agree a new close date"),
    "negative_sentiment": ("address_concerns", "call", "Call to address the concerns"),
    "single_contact": ("add_stakeholder", "meeting", "Involve a second stakeholder"),
    "no_next_task": ("plan_next_step", "task", "Plan the next step"),
    "value_lowered": ("requalify", "call", "Call to re-qualify scope and budget"),
    "close_date_pushed": ("firm_next_step", "meeting", "Book a decision meeting"),
}
PRIORITY_BONUS = {"high": 2, "medium": 0.5, "low": 0}


@dataclass
class Action:
    entity: str
    record_id: int
    key: str
    kind: str
    title: str
    reason: str
    rank: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _settings() -> Any:
    return sdk.settings(sdk.current_tenant(), "insights")


def deal_actions(deal_ids: list[int]) -> list[Action]:
    """Actions of deals from their stored risk factors (two queries)."""
    if not deal_ids:
        return []
    priorities = dict(Deal.select(Deal.id, Deal.priority).where(Deal.id.in_(deal_ids)).tuples())
    found = []
    for deal_id, factors in DealRisk.select(DealRisk.deal, DealRisk.factors).where(DealRisk.deal.in_(deal_ids)).tuples():
        for factor in factors:
            if factor["key"] in DEAL_ACTIONS:
                key, kind, title = DEAL_ACTIONS[factor["key"]]
                rank = factor["points"] + PRIORITY_BONUS.get(priorities.get(deal_id), 0)
                found.append(Action("deal", deal_id, key, kind, title, factor["reason"], rank))
    return found


def lead_actions(leads: list[tuple]) -> list[Action]:
    """Actions of leads from ``(id, status, priority, created_at, last_contact_at)``."""
    settings = _settings()
    now = sdk.utcnow()
    found = []
    for lead_id, status, priority, created, last_contact in leads:
        if status not in OPEN_LEAD_STATUSES:
            continue
        bonus = PRIORITY_BONUS.get(priority, 0)
        if last_contact is None:
            hours = (now - created).total_seconds() / 3600
            if hours >= settings["first_contact_hours"]:
                found.append(Action("lead", lead_id, "first_contact", "call", "Make the first contact", f"Not contacted {hours:.0f} hours after it came in" + (" (high priority)" if priority == "high" else ""), 3 + bonus))
        else:
            days = (now - last_contact).days
            if days >= settings["lead_follow_up_days"]:
                found.append(Action("lead", lead_id, "send_follow_up", "email", "Send the follow-up", f"No contact for {days} days", 2 + bonus))
    return found


def _lead_rows(query: Any) -> list[tuple]:
    return list(query.select(Lead.id, Lead.status, Lead.priority, Lead.created_at, Lead.last_contact_at).tuples())


def without_decided(actions: list[Action]) -> list[Action]:
    """Drop dismissed actions, and done ones still within their snooze (one query)."""
    if not actions:
        return []
    snooze_since = sdk.utcnow() - dt.timedelta(days=_settings()["done_snooze_days"])
    ids = {a.record_id for a in actions}
    decided = {
        (entity, record_id, action)
        for entity, record_id, action, decision, at in ActionDecision.select(ActionDecision.entity, ActionDecision.record_id, ActionDecision.action, ActionDecision.decision, ActionDecision.decided_at)
        .where(ActionDecision.record_id.in_(list(ids))).tuples()
        if decision == "dismissed" or at >= snooze_since
    }
    return [a for a in actions if (a.entity, a.record_id, a.key) not in decided]


def for_record(entity: str, record_id: int) -> list[Action]:
    """The ranked actions of one lead or deal."""
    if entity == "deal":
        actions = deal_actions([record_id])
    else:
        actions = lead_actions(_lead_rows(Lead.select().where(Lead.id == record_id)))
    return sorted(without_decided(actions), key=lambda a: -a.rank)


def due(limit: int = 20, deal_query: Any = None, lead_query: Any = None) -> list[Action]:
    """The tenant's most pressing actions: deals at medium or high risk and leads waiting
    for contact (a constant number of queries; ``*_query`` limit what the caller sees)."""
    settings = _settings()
    now = sdk.utcnow()
    deals = (deal_query if deal_query is not None else Deal.select()).select(Deal.id).join(DealRisk, on=(DealRisk.deal == Deal.id)).where(DealRisk.level != "low").order_by(DealRisk.points.desc()).limit(200)
    first = now - dt.timedelta(hours=settings["first_contact_hours"])
    follow = now - dt.timedelta(days=settings["lead_follow_up_days"])
    waiting = (lead_query if lead_query is not None else Lead.select()).where(
        Lead.status.in_(OPEN_LEAD_STATUSES),
        (Lead.last_contact_at.is_null() & (Lead.created_at <= first)) | (Lead.last_contact_at <= follow),
    ).order_by(Lead.id.desc()).limit(200)
    actions = deal_actions([i for (i,) in deals.tuples()]) + lead_actions(_lead_rows(waiting))
    return sorted(without_decided(actions), key=lambda a: (-a.rank, a.entity, a.record_id))[:limit]


def decide(entity: str, record_id: int, key: str, decision: str, *, title: str = "", user_id: int | None = None) -> ActionDecision:
    """Record a decision; ``"task"`` also creates the task on the record (due tomorrow),
    and a deal's risk is reassessed at once (one query for that deal), so that the page
    the user returns to no longer says "No open next task"."""
    from crm_plugins.insights import risk

    task_id = None
    with sdk.atomic():
        if decision == "task":
            task = sdk.create_record(Task, {"title": (title or key.replace("_", " "))[:300], entity: record_id, "due_at": sdk.utcnow() + dt.timedelta(days=1), "assignee": user_id})
            task_id = task.id
        ActionDecision.delete().where(ActionDecision.entity == entity, ActionDecision.record_id == record_id, ActionDecision.action == key).execute()
        made = ActionDecision.create(entity=entity, record_id=record_id, action=key, decision=decision, task_id=task_id, user_id=user_id)
    if decision == "task" and entity == "deal":
        risk.recompute(sdk.current_tenant(), [record_id])
    return made
