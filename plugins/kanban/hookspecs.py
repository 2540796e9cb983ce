"""Hooks the kanban plugin declares for other plugins."""

from __future__ import annotations

from typing import Any

from crm_plugins.kanban.contrib import CardBadge
from crmcore.sdk import hookspec


@hookspec
def crm_kanban_card_badges(tenant: Any, entity: str, record_ids: list[int]) -> list[CardBadge]:
    """Badges for a batch of cards: entity is "deal" or "lead"; called once per page of cards
    (never per card) through the tenant's subset caller; a raising implementation is logged and skipped.

    :param tenant: the tenant whose board is shown.
    :param entity: ``"deal"`` (pipeline boards) or ``"lead"`` (the lead board).
    :param record_ids: the ids of the cards on this page (one column page, or the first
        page of every column), at most a few hundred.
    :return: a list of :class:`crm_plugins.kanban.contrib.CardBadge`; badges for ids not
        in ``record_ids`` are ignored.
    """
