"""The scoring plugin's part of privacy requests and merges (hooks ``crm_privacy_export``,
``crm_privacy_erase``, ``crm_merge_records``).

A score is profiling data about the person (its reasons quote their job title, their
company's size ...), so it is exported and erased with them. Erasing deletes the stored
score and its history; a later rescore only sees the anonymised lead.

Merging two leads drops the merged lead's score and history rather than moving them: they
describe the other record's data, and the kept lead's score must be worked out again
from what it now has (its moved activities and deals, its filled fields). That rescore
is requested through the usual debounced task. Merging contacts or companies changes
what their leads score on (job title, company size), so their leads are rescored too.
"""

from __future__ import annotations

from typing import Any

from crm_plugins.scoring.models import LeadScore, ScoreHistory
from crmcore.sdk import Lead, PrivacySection, enqueue


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def export(lead_ids: list[int]) -> list[PrivacySection]:
    """The current score of each of the person's leads, with its reasons, and its history."""
    from crm_plugins.scoring import bulk

    if not lead_ids:
        return []
    scores = []
    for row in LeadScore.select().where(LeadScore.lead.in_(lead_ids)).order_by(LeadScore.lead):
        factors = bulk.explain(row.factors)  # compact factors: reasons written out
        scores.append({
            "lead_id": row.lead_id, "score": row.score, "rule_score": row.rule_score, "grade": row.grade,
            "components": bulk.components_of(row.components, factors), "factors": factors,
            "probability": row.probability, "top_features": bulk.top_features_of(row.top_features),
            "computed_at": _iso(row.computed_at),
        })
    history = [
        {"lead_id": h.lead_id, "score": h.score, "grade": h.grade, "at": _iso(h.at)}
        for h in ScoreHistory.select().where(ScoreHistory.lead.in_(lead_ids)).order_by(ScoreHistory.lead, ScoreHistory.at, ScoreHistory.id)
    ]
    if not scores and not history:
        return []
    return [PrivacySection("scoring", {"scores": scores, "history": history})]


def erase(lead_ids: list[int]) -> dict[str, int]:
    """Delete the stored scores and score history of the person's leads."""
    if not lead_ids:
        return {}
    return {
        "scoring_lead_score": LeadScore.delete().where(LeadScore.lead.in_(lead_ids)).execute(),
        "scoring_history": ScoreHistory.delete().where(ScoreHistory.lead.in_(lead_ids)).execute(),
    }


def merge(tenant: Any, entity: str, kept_id: int, merged_id: int) -> dict[str, int]:
    """Drop the merged lead's score and history and rescore the kept lead (or, for a
    contact or a company, every lead of the kept one). The rescore task is queued in the
    merge's transaction, so a refused merge queues nothing."""
    from crm_plugins.scoring.hooks import TASK_KIND, schedule_rescore

    if entity == "lead":
        counts = {
            "scoring_lead_score": LeadScore.delete().where(LeadScore.lead == merged_id).execute(),
            "scoring_history": ScoreHistory.delete().where(ScoreHistory.lead == merged_id).execute(),
        }
        schedule_rescore(tenant, kept_id)
        return counts
    field = {"contact": Lead.contact, "company": Lead.company}.get(entity)
    if field is not None:
        lead_ids = [i for (i,) in Lead.select(Lead.id).where(field == kept_id).tuples()]
        if lead_ids:  # one task for them all: a company may have thousands of leads
            enqueue(TASK_KIND, {"lead_ids": lead_ids}, tenant=tenant)
    return {}
