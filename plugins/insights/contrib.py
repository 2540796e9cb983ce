"""What the insights plugin's hooks exchange with other plugins."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GeneratedText:
    """A generated text (a record summary, a meeting brief, a reply draft) and where it
    came from (``"extractive"``, ``"openai-compatible:<model>"``, a plugin's name ...)."""

    text: str
    source: str
