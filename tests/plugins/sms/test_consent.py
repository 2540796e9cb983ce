"""Opt-out words opt the number out in the channels' consent record (with a
confirmation), START/UNSTOP opt back in, HELP answers the help text; nothing is sent to
an opted-out number."""

from __future__ import annotations

import crm_plugins.channels.contrib as channels
from tests.plugins.channels.conftest import drain, in_tenant
from tests.plugins.sms.conftest import make_lead
from tests.plugins.sms.test_send import send

NUMBER = "+447911123456"


def test_each_opt_out_word_opts_its_number_out_with_a_confirmation(env, callbacks):
    """One number per word (the words' parsing is unit-tested in test_text.py)."""
    words = ["STOP", "stop", "Stop please.", "UNSUBSCRIBE!", "end", "Quit", "stopall", "revoke", "OPT OUT", "cancel it"]
    numbers = [f"+4479111234{i:02d}" for i in range(len(words))]
    for number, body in zip(numbers, words, strict=True):
        answer = callbacks.inbound(number, body, f"SM-{body}")
        assert "<Message>You are unsubscribed" in answer.get_data(as_text=True), body
    with in_tenant(env):
        rows = channels.opted_out(numbers)
    assert [(rows[n].channel, rows[n].source) for n in numbers] == [("sms", w) for w in words]


def test_a_sentence_mentioning_stop_is_a_message_not_an_opt_out(env, callbacks):
    answer = callbacks.inbound(NUMBER, "I will stop by at the end of the day to sign", "SMlong")
    assert "<Message>" not in answer.get_data(as_text=True)
    with in_tenant(env):
        assert channels.opted_out([NUMBER]) == {}


def test_an_opted_out_number_is_refused_before_the_provider_and_start_opts_back_in(env, admin, callbacks, provider):
    lead = make_lead(env)
    queued_before = send(admin, lead, body="Queued before the STOP")
    callbacks.inbound(NUMBER, "Stop please.", "SMstop")
    refused = send(admin, lead, status=422)
    assert f"{NUMBER} opted out (Stop please. on " in str(refused)
    drain(env)  # the one queued before the STOP fails with the reason, never posted
    answer = admin("GET", f"/messages/{queued_before['id']}")
    assert answer["status"] == "failed" and "opted out" in answer["failure_reason"]
    assert provider.requests == []

    help_answer = callbacks.inbound(NUMBER, "help", "SMhelp")
    assert "Reply STOP to stop receiving messages" in help_answer.get_data(as_text=True)
    start = callbacks.inbound(NUMBER, "UNSTOP", "SMstart")
    assert "You are subscribed again" in start.get_data(as_text=True)
    send(admin, lead, body="Welcome back")
    drain(env)
    assert [f["Body"] for f in provider.sent] == ["Welcome back"]


def test_the_help_text_is_the_tenants_setting(env, callbacks):
    from tests.plugins.sms.test_callbacks import _settings

    env.write_tenant("acme", name="Acme Ltd", plugins=["channels", "sms"], settings={"sms": {**_settings(env), "help_text": "Acme: call 0800 123."}})
    env.reload()
    assert "<Message>Acme: call 0800 123.</Message>" in callbacks.inbound(NUMBER, "HELP?", "SMh").get_data(as_text=True)


def test_the_lead_export_shows_its_texts_and_consent_and_erase_keeps_the_opt_out(env, admin, callbacks):
    lead = make_lead(env)
    callbacks.inbound(NUMBER, "STOP", "SMstop-export")
    exported = admin("GET", f"/leads/{lead.id}/export")["plugins"]["channels"]
    assert [m["body"] for m in exported["messages"]] == ["STOP"]
    assert [(c["address"], c["opted_out"], c["source"]) for c in exported["consent"]] == [(NUMBER, True, "STOP")]
    admin("POST", f"/leads/{lead.id}/erase")
    with in_tenant(env):
        assert NUMBER in channels.opted_out([NUMBER])  # still never texted again
