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
