"""Hooks the scoring plugin declares for other plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.sdk import hookspec

if TYPE_CHECKING:  # pragma: no cover
    from crm_plugins.scoring.contrib import ScoreFactor


@hookspec
def crm_scoring_factors(tenant: Any) -> list[ScoreFactor]:
    """Extra score factors, called through the tenant's subset caller (a factor of a plugin the tenant has off does not count)."""
