"""Sentiment: known sentences and weak spots, signals -> tasks -> rows, backfill, trend."""

from __future__ import annotations

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from crm_plugins.insights.sentiment import EMPTY, NOT_SCORED, SCORED, score_text
from tests.plugins.insights.conftest import days_ago, drain, in_tenant, queued

KNOWN = [
    ("Great meeting, they loved the demo and want a proposal!", 1),
    ("Customer is angry about the billing error and threatens to cancel.", -1),
    ("Very disappointed with the slow delivery, this is unacceptable.", -1),
    # business negations: never negative
    ("No problems at all with the rollout.", 1),
    ("We have no complaints.", 1),
    ("No issues so far.", 1),
    ("They had no concerns about the contract.", 1),
    ("Not a problem, we can move the call.", 1),
    ("We never had any issues with your team.", 1),
]


@pytest.mark.parametrize(("text", "sign"), KNOWN)
def test_known_sentences(text, sign):
    result = score_text(text)
    assert result.status == SCORED
    assert (result.score > 0.05) if sign > 0 else (result.score < -0.05), (text, result)


def test_polite_formulas_are_not_sentiment():
    # VADER alone scores "kindly"/"please" as positive: a neutral request stays neutral
    assert score_text("Kindly send the signed invoice by Friday.").score == 0.0
    assert score_text("Please send us the updated quote. Thanks in advance, kind regards").score == 0.0
    # and a polite complaint stays a complaint
    assert score_text("Kindly note that we are very unhappy with the delays.").score < -0.3


def test_text_that_is_not_english_is_not_scored():
    for text in ("Wir haben leider keine Zeit für ein weiteres Treffen und sind enttäuscht.",
                 "Nous sommes très contents du service et de la réactivité.",
                 "Estamos muy contentos con el servicio y la atención."):
        result = score_text(text)
        assert result.status == NOT_SCORED and result.score is None, text
    assert score_text("   ").status == EMPTY
    assert score_text("Call with John about the Q3 rollout, pricing discussed").status == SCORED


def test_interactions_scored_through_the_queue(env):
    from crm_plugins.insights.models import InteractionSentiment
    from crmcore.sdk import Activity, Lead, Note, create_record, update_record

    with in_tenant(env):
        lead = create_record(Lead, {"name": "Ann"})
        activity = create_record(Activity, {"kind": "call", "subject": "Call", "content": "They were furious about the outage.", "lead": lead.id, "occurred_at": days_ago(1)})
        create_record(Note, {"body": "Happy customer, loves the new dashboard.", "lead": lead.id})
        # the receivers only queue: nothing is scored in the request
        assert InteractionSentiment.select().count() == 0
        assert queued("insights.sentiment") == 2
    drain(env)
    with in_tenant(env):
        rows = {r.entity: r for r in InteractionSentiment.select()}
        assert rows["activity"].score < -0.3 and rows["activity"].lead_id == lead.id
        assert rows["note"].score > 0.3
        update_record(Activity.get_by_id(activity.id), {"content": "Problem solved, they are delighted."})
    drain(env)
    with in_tenant(env):
        assert InteractionSentiment.get(InteractionSentiment.entity == "activity").score > 0.3
        from crm_plugins.insights import interactions

        trend = interactions.trend("lead", lead.id)
        assert trend["scored"] == 2 and trend["recent_average"] > 0.3


def test_backfill_in_batches_and_disabled_tenant(env):
    from crm_plugins.insights import interactions
    from crm_plugins.insights.models import InteractionSentiment
    from crmcore import db
    from crmcore.sdk import Activity, Note

    with in_tenant(env) as tenant:
        # written without signals (as an import or an older version would have)
        Activity.insert_many([{"tenant": tenant.id, "kind": "call", "subject": f"Call {i}", "content": "Good call, no complaints."} for i in range(7)]).execute()
        Note.insert_many([{"tenant": tenant.id, "body": "Das ist leider nicht gut gelaufen, wir sind enttäuscht."}]).execute()
        assert interactions.backfill(tenant, batch=3) == {"activity": 7, "note": 1}
        assert queued("insights.sentiment") == 4  # 3 + 3 + 1 activities, 1 note
        assert interactions.backfill(tenant, batch=3) == {"activity": 7, "note": 1}  # same batches: same tasks
        assert queued("insights.sentiment") == 4
    drain(env)
    with in_tenant(env) as tenant:
        assert InteractionSentiment.select().where(InteractionSentiment.status == "scored").count() == 7
        assert InteractionSentiment.get(InteractionSentiment.entity == "note").status == "not_scored"
        assert interactions.backfill(tenant, inline=True) == {"activity": 0, "note": 0}
    with in_tenant(env, "beta"):
        from crmcore.sdk import create_record

        create_record(Activity, {"kind": "call", "subject": "Call", "content": "Terrible."})
        assert queued("insights.sentiment") == 0
    with in_tenant(env) as tenant:  # a backfill of acme does not touch beta's activity
        assert interactions.backfill(tenant, inline=True) == {"activity": 0, "note": 0}
    with env.app.app_context(), db.connection():
        assert InteractionSentiment.select_all_tenants().where(InteractionSentiment.tenant == env.tenant("beta").id).count() == 0


def test_chat_message_signal_is_scored(env):
    from types import SimpleNamespace

    from crm_plugins.insights.models import InteractionSentiment
    from crmcore import sdk

    with in_tenant(env) as tenant:
        message = SimpleNamespace(id=41, content="Thanks, that was really helpful!", created_at=days_ago(0))
        sdk.send_signal("chat_message_received", tenant, conversation=SimpleNamespace(id=1, lead_id=None), message=message, lead=None)
    drain(env)
    with in_tenant(env):
        row = InteractionSentiment.get(InteractionSentiment.entity == "chat_message")
        assert row.record_id == 41 and row.score > 0.3


def test_skipping_vader_without_lexicon_words_changes_no_score():
    """The shortcut (no token of VADER's lexicon: 0 without asking VADER) gives VADER's
    own answer on a seeded mix of neutral words, lexicon entries, digits and emoticons."""
    import random

    from crm_plugins.insights.sentiment import analyzer, normalise

    vader = analyzer()
    lexicon = sorted(vader.lexicon)
    neutral = "call meeting quote with pricing follow up next week voicemail invoice contract team sent proposal budget 2026 q3 x2 10% $500 re: fwd:".split()
    rng = random.Random(14)
    for _ in range(600):
        pool = neutral if rng.random() < 0.7 else lexicon
        text = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 10))) + rng.choice([".", "!", "?", "", " :)", " :-("])
        result = score_text(text, 0.0)
        if result.status == SCORED:
            assert result.score == round(SentimentIntensityAnalyzer.polarity_scores(vader, normalise(text))["compound"], 4), text


def test_ascii_fast_path_matches_vader():
    """analyzer() skips VADER's emoji pass for ASCII text: same scores as VADER's own
    polarity_scores on every sentence of these tests, and emoji still count."""
    from crm_plugins.insights.sentiment import analyzer

    vader = analyzer()
    texts = [t for t, _sign in KNOWN] + ["Kindly send it :)", "Great!!! But the price...", "kind of ok", "not bad at all", "We love it \N{SMILING FACE WITH SMILING EYES}"]
    for text in texts:
        assert vader.polarity_scores(text) == SentimentIntensityAnalyzer.polarity_scores(vader, text), text
    assert vader.polarity_scores("\N{SMILING FACE WITH SMILING EYES}")["compound"] > 0


def test_faster_negation_and_idiom_checks_match_stock_vader():
    """analyzer()'s own _negation_check and _special_idioms_check give the stock
    analyser's scores on a seeded mix built to hit their branches: negations ("not",
    "isn't", "never so", "without doubt"), idioms and boosters ("kind of", "the bomb",
    "cut the mustard"), "least", "but", capitals and punctuation."""
    import random

    from vaderSentiment.vaderSentiment import BOOSTER_DICT, NEGATE, SPECIAL_CASES

    from crm_plugins.insights.sentiment import analyzer

    ours, stock = analyzer(), SentimentIntensityAnalyzer()
    lexicon = sorted(ours.lexicon)
    pools = [
        sorted(NEGATE), sorted(BOOSTER_DICT), [w for case in SPECIAL_CASES for w in case.split()],
        ["never", "so", "this", "without", "doubt", "least", "at", "very", "but", "no", "or", "nor", "kind", "of", "didn't", "mayn't", "oughtn't"],
        "call meeting quote pricing follow up next week invoice contract team proposal".split(), lexicon,
    ]
    rng = random.Random(1403)
    for _ in range(3000):
        words = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(2, 14))]
        words = [w.upper() if rng.random() < 0.08 else w for w in words]
        text = " ".join(words) + rng.choice([".", "!", "!!", "?", "??", "", " :)"])
        assert ours.polarity_scores(text) == stock.polarity_scores(text), text
