"""Quoted text and signatures of an email, told apart from what its writer wrote, so a
page can show the new text and fold the rest (a reply quotes the whole thread)."""

from __future__ import annotations

import re

#: "On Mon, 1 Dec 2026 at 10:00, Ada <ada@example.com> wrote:" (and its common variants,
#: possibly wrapped onto two lines by the client)
ATTRIBUTION = re.compile(r"^(On\b.{0,300}\bwrote:|Am\b.{0,300}\bschrieb.{0,40}:|Le\b.{0,300}\ba écrit\s*:)\s*$", re.IGNORECASE | re.DOTALL)
#: Outlook's separators of a quoted message
SEPARATOR = re.compile(r"^(-{2,}\s*Original Message\s*-{2,}|_{10,})$", re.IGNORECASE)
SIGNATURE = "-- "


def split_quoted(text: str) -> tuple[str, str]:
    """(what the writer wrote, the quoted text and signature after it); the second is ""
    when there is none. Only a trailing block folds: quoted lines between new ones stay."""
    lines = (text or "").replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        stripped = line.strip()
        two = f"{stripped} {lines[i + 1].strip()}" if i + 1 < len(lines) else stripped
        starts_quote = (
            line.rstrip("\n") == SIGNATURE
            or SEPARATOR.match(stripped)
            or (stripped.startswith("From:") and i + 1 < len(lines) and lines[i + 1].strip().startswith(("Sent:", "Date:")))
            or ATTRIBUTION.match(stripped)
            or (ATTRIBUTION.match(two) and not stripped.startswith(">"))
            or (stripped.startswith(">") and all(not rest.strip() or rest.lstrip().startswith(">") for rest in lines[i:]))
        )
        if starts_quote and "\n".join(lines[:i]).strip():
            return "\n".join(lines[:i]).rstrip(), "\n".join(lines[i:]).strip("\n")
    return (text or "").rstrip(), ""
