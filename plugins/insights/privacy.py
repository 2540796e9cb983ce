"""Privacy export / erase and merges for what the plugin stores about people."""

from __future__ import annotations

from typing import Any

from crm_plugins.insights.models import (
    ActionDecision,
    CustomerHealth,
    GeneratedTextRecord,
    HealthHistory,
    InteractionSentiment,
)
from crmcore import sdk
from crmcore.sdk import PrivacySection

S = InteractionSentiment
G = GeneratedTextRecord


def _generated_where(lead_ids: list[int], contact_ids: list[int]) -> Any:
    return ((G.entity == "lead") & G.record_id.in_(list(lead_ids) or [0])) | ((G.entity == "contact") & G.record_id.in_(list(contact_ids) or [0]))


def _conversation_ids(lead_ids: list[int], contact_ids: list[int]) -> list[int]:
    """The channels conversations of these people (their messages' scores have no record
    links); one query per person, through the channels plugin's contract."""
    if not sdk.is_enabled(sdk.current_tenant(), "channels"):
        return []
    import crm_plugins.channels.contrib as channels

    found: set[int] = set()
    for entity, ids in (("lead", lead_ids), ("contact", contact_ids)):
        for record_id in ids:
            found.update(m.conversation_id for m in channels.messages_of(entity, record_id, limit=10000))
    return sorted(found)


def _sentiment_where(lead_ids: list[int], contact_ids: list[int]) -> Any:
    conversations = _conversation_ids(lead_ids, contact_ids) or [0]
    return S.lead_id.in_(list(lead_ids) or [0]) | S.contact_id.in_(list(contact_ids) or [0]) | ((S.entity == "message") & S.conversation_id.in_(conversations))


def export(lead_ids: list[int], contact_ids: list[int]) -> list[PrivacySection]:
    sentiments = list(S.select(S.entity, S.record_id, S.conversation_id, S.score, S.status, S.occurred_at).where(_sentiment_where(lead_ids, contact_ids)).dicts())
    health = list(CustomerHealth.select(CustomerHealth.record_id, CustomerHealth.score, CustomerHealth.band, CustomerHealth.computed_at).where(CustomerHealth.entity == "contact", CustomerHealth.record_id.in_(list(contact_ids) or [0])).dicts())
    decisions = list(ActionDecision.select(ActionDecision.record_id, ActionDecision.action, ActionDecision.decision, ActionDecision.decided_at).where(ActionDecision.entity == "lead", ActionDecision.record_id.in_(list(lead_ids) or [0])).dicts())
    generated = list(G.select(G.entity, G.record_id, G.purpose, G.text, G.source, G.created_at).where(_generated_where(lead_ids, contact_ids)).dicts())
    return [PrivacySection("insights", {"sentiments": sentiments, "contact_health": health, "lead_action_decisions": decisions, "generated_texts": generated})]


def erase(lead_ids: list[int], contact_ids: list[int]) -> dict[str, int]:
    contacts = list(contact_ids) or [0]
    return {
        "insights_sentiment": S.delete().where(_sentiment_where(lead_ids, contact_ids)).execute(),
        "insights_customer_health": CustomerHealth.delete().where(CustomerHealth.entity == "contact", CustomerHealth.record_id.in_(contacts)).execute(),
        "insights_health_history": HealthHistory.delete().where(HealthHistory.entity == "contact", HealthHistory.record_id.in_(contacts)).execute(),
        "insights_action_decision": ActionDecision.delete().where(ActionDecision.entity == "lead", ActionDecision.record_id.in_(list(lead_ids) or [0])).execute(),
        "insights_generated_text": G.delete().where(_generated_where(lead_ids, contact_ids)).execute(),
    }


def merge(entity: str, kept_id: int, merged_id: int) -> dict[str, int]:
    """Sentiments move to the kept record; the merged customer's health is dropped (the
    next daily run scores the kept one with both histories); a lead's decisions move
    unless the kept lead has one for the same action."""
    column = {"lead": "lead_id", "contact": "contact_id", "company": "company_id"}.get(entity)
    if column is None:
        return {}
    field = getattr(S, column)
    moved = {
        "insights_sentiment": S.update({field: kept_id}).where(field == merged_id).execute(),
        "insights_generated_text": G.update(record_id=kept_id).where(G.entity == entity, G.record_id == merged_id).execute(),
    }
    if entity in ("contact", "company"):
        moved["insights_customer_health"] = CustomerHealth.delete().where(CustomerHealth.entity == entity, CustomerHealth.record_id == merged_id).execute()
        moved["insights_health_history"] = HealthHistory.delete().where(HealthHistory.entity == entity, HealthHistory.record_id == merged_id).execute()
    else:
        kept_actions = ActionDecision.select(ActionDecision.action).where(ActionDecision.entity == "lead", ActionDecision.record_id == kept_id)
        ActionDecision.delete().where(ActionDecision.entity == "lead", ActionDecision.record_id == merged_id, ActionDecision.action.in_(kept_actions)).execute()
        moved["insights_action_decision"] = ActionDecision.update(record_id=kept_id).where(ActionDecision.entity == "lead", ActionDecision.record_id == merged_id).execute()
    return moved
