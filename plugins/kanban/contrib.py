"""What the kanban plugin's hooks return (the contract other plugins rely on)."""

from __future__ import annotations

from dataclasses import dataclass

TONES = ("neutral", "good", "warn", "bad")


@dataclass(frozen=True)
class CardBadge:
    """A small label on one card of a board (a lead score, a risk flag ...)."""

    record_id: int  # the deal or lead id the badge belongs to
    label: str  # short text on the card, e.g. "82 · A"
    title: str = ""  # tooltip / accessible description, e.g. "Lead score 82 (grade A)"
    tone: str = "neutral"  # "neutral" | "good" | "warn" | "bad" (CSS class on the badge)
    order: int = 100
