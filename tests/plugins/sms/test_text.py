"""Pure functions: E.164 numbers, segment counts, the consent keywords."""

from __future__ import annotations

import pytest

from crm_plugins.sms import text


def test_numbers_are_normalised_to_e164_in_the_default_region():
    assert text.normalise("07911 123456", "GB") == "+447911123456"
    assert text.normalise("+1 (415) 555-0100", "GB") == "+14155550100"
    assert text.normalise("(415) 555-0100", "us") == "+14155550100"
    assert text.normalise("whatsapp:+447911123456", "US") == "+447911123456"
    for bad in ("", "12345", "hello", "+44 7911"):
        with pytest.raises(text.BadNumber):
            text.normalise(bad, "GB")
    assert "07911 123456" in text.forms("+447911123456")


@pytest.mark.parametrize(("body", "encoding", "units", "parts"), [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),  # extension characters count twice
    ("€" * 81, "GSM-7", 162, 2),
    ("é ü Ä £", "GSM-7", 7, 1),
    ("ł" * 70, "UCS-2", 70, 1),
    ("ł" * 71, "UCS-2", 71, 2),
    ("ł" * 134, "UCS-2", 134, 2),
    ("ł" * 135, "UCS-2", 135, 3),
    ("😀" * 35, "UCS-2", 70, 1),  # beyond the BMP: two code units
])
def test_segments_follow_gsm7_and_ucs2_limits(body, encoding, units, parts):
    counted = text.segments(body)
    assert (counted.encoding, counted.units, counted.segments) == (encoding, units, parts)


def test_the_remaining_characters_of_the_last_segment():
    assert text.segments("a" * 150).remaining == 10
    assert text.segments("a" * 200).as_dict() == {"encoding": "GSM-7", "units": 200, "segments": 2, "per_segment": 153, "remaining": 106}


@pytest.mark.parametrize(("body", "word"), [
    ("STOP", "stop"), ("Stop please.", "stop"), ("stop!!!", "stop"), ("opt-out", "stop"), ("Please UNSUBSCRIBE me", "stop"),
    ("STOPALL", "stop"), ("start", "start"), ("Unstop", "start"), ("HELP", "help"), ("help?", "help"),
    ("Hello", None), ("I will stop by at the end of the day", None), ("", None), ("Can you help me with the invoice", None),
])
def test_consent_keywords(body, word):
    assert text.keyword(body) == word
