"""What the chat plugin's hooks exchange with other plugins."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AssistantReply:
    """An assistant's answer: ``text`` is posted as an assistant message; ``confidence``
    (0..1) is recorded with it; ``handover`` asks for a human (the assistant then stays
    quiet in that conversation until an agent has replied)."""

    text: str
    confidence: float = 1.0
    handover: bool = False
