"""What other plugins return from the scoring plugin's hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScoreFactor:
    """An extra score factor another plugin contributes through ``crm_scoring_factors``."""

    name: str  # "<plugin>:<factor>", e.g. "chat:conversations"
    label: str  # shown to users, e.g. "Chat conversations"
    # (tenant, lead_ids) -> {lead_id: (points, reason)}; ONE query for the whole batch, never per lead.
    compute: Callable[[Any, list[int]], dict[int, tuple[float, str]]]
    component: str = "engagement"  # "fit" | "engagement" | "recency" | "other"


# --------------------------------------------------------------------------- reading scores
# For other plugins (automation's conditions on a lead's score): the current score, read
# in the caller's tenant, without reaching into this plugin's models.


def lead_scores(lead_ids: list[int]) -> dict[int, float]:
    """lead id -> its current score (0-100), in one query; unscored leads are absent."""
    from crm_plugins.scoring.models import LeadScore

    if not lead_ids:
        return {}
    return dict(LeadScore.select(LeadScore.lead, LeadScore.score).where(LeadScore.lead.in_(list(lead_ids))).tuples())


def lead_score_expression(lead_id_column: Any) -> Any:
    """A SQL expression of the current score of the lead whose id is ``lead_id_column``
    (NULL when unscored), for filters over every lead in one query."""
    from crm_plugins.scoring.models import LeadScore

    scores = LeadScore.alias("contrib_lead_score")
    return scores.select(scores.score).where(scores.lead == lead_id_column)
