"""The kanban plugin's migrations. It has no tables of its own; it adds one index to the
core's deal table, for the column totals of a board."""

from __future__ import annotations

from typing import Any

from crmcore.sdk import Migration


def _totals_index(database: Any) -> None:
    """Board totals are COUNT/SUM(value)/SUM(value * probability) per stage of one
    pipeline. With these columns in one index the database reads the index alone, in
    stage order, instead of every deal row of the table (bench/results/kanban.md: at
    100,000 deals that was most of the board's time)."""
    database.execute_sql('CREATE INDEX IF NOT EXISTS "kanban_deal_totals" ON "crm_deal" ("tenant_id", "pipeline_id", "stage_id", "value", "probability")')


MIGRATIONS = [Migration("0001_deal_totals_index", _totals_index)]
