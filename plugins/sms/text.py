"""Phone numbers (E.164 with phonenumbers), WhatsApp addresses, SMS segment counting and
the consent keywords of inbound messages: pure functions, unit-tested."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

WHATSAPP = "whatsapp:"

# --------------------------------------------------------------------------- numbers


class BadNumber(ValueError):
    """Not a valid phone number (the message says why)."""


def normalise(raw: str, region: str) -> str:
    """``raw`` as E.164 (``+14155550100``), read in ``region`` when it has no +country;
    raises :class:`BadNumber`."""
    text = (raw or "").strip()
    if text.lower().startswith(WHATSAPP):
        text = text[len(WHATSAPP):]
    if not text:
        raise BadNumber("no number")
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise BadNumber(f"{raw[:40]!r} is not a phone number ({exc._msg})") from None
    if not phonenumbers.is_valid_number(number):
        raise BadNumber(f"{raw[:40]!r} is not a valid phone number (region {region.upper()} for numbers without +country)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def forms(e164: str) -> list[str]:
    """The ways a stored phone may write the number: E.164, international, national, digits."""
    number = phonenumbers.parse(e164, None)
    found = [e164, e164[1:]]
    for style in (phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.NATIONAL):
        written = phonenumbers.format_number(number, style)
        found += [written, re.sub(r"[^\d+]", "", written)]
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- segments

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")  # two septets each (escape + char)


@dataclass(frozen=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int  # 160/153 or 70/67
    remaining: int  # units left in the last segment

    def as_dict(self) -> dict[str, object]:
        return {"encoding": self.encoding, "units": self.units, "segments": self.segments,
                "per_segment": self.per_segment, "remaining": self.remaining}


def segments(text: str) -> Segments:
    """How many SMS parts ``text`` takes: GSM-7 (160 alone, 153 per part of a longer
    message; the extension characters count twice) unless a character is outside it,
    then UCS-2 (70, or 67 per part; a character beyond the BMP counts twice)."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        encoding, units, single, multi = "GSM-7", sum(2 if c in GSM7_EXTENDED else 1 for c in text), 160, 153
    else:
        encoding, units, single, multi = "UCS-2", len(text.encode("utf-16-le")) // 2, 70, 67
    if units <= single:
        return Segments(encoding, units, 1 if units else 0, single, single - units)
    parts = -(-units // multi)
    return Segments(encoding, units, parts, multi, parts * multi - units)


# --------------------------------------------------------------------------- consent keywords

STOP_WORDS = frozenset({"STOP", "UNSUBSCRIBE", "END", "QUIT", "STOPALL", "REVOKE", "OPTOUT", "CANCEL"})
START_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
#: a keyword counts in a short message only ("Stop please.", "STOP!!", "ok stop"); a long
#: text that happens to contain "end" is a message, not a request
MAX_WORDS = 4


def keyword(body: str) -> str | None:
    """``"stop"``, ``"start"``, ``"help"`` or None for an inbound text."""
    words = re.findall(r"[A-Za-z]+", body or "")
    if not words or len(words) > MAX_WORDS:
        return None
    upper = [w.upper() for w in words]
    joined = "".join(upper)
    if any(w in STOP_WORDS for w in upper) or joined in STOP_WORDS:  # "opt out", "stop all"
        return "stop"
    if any(w in START_WORDS for w in upper) or joined in START_WORDS:
        return "start"
    if len(upper) <= 2 and any(w in HELP_WORDS for w in upper):
        return "help"
    return None
