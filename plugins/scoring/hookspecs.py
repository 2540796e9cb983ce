"""Hooks the scoring plugin declares for other plugins."""

from __future__ import annotations

from typing import Any

from crm_plugins.scoring.contrib import ScoreFactor  # at run time: answers are checked against it
from crmcore.sdk import hookspec


@hookspec
def crm_scoring_factors(tenant: Any) -> list[ScoreFactor]:
    """Extra score factors, called through the tenant's subset caller (a factor of a plugin the tenant has off does not count)."""
