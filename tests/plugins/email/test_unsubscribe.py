"""Marketing email carries a signed unsubscribe link and the RFC 8058 one-click headers;
an unsubscribe is recorded with its time and source and honoured at once."""

from __future__ import annotations

from urllib.parse import urlsplit

import crm_plugins.channels.contrib as channels
from crm_plugins.channels.models import Consent
from crm_plugins.email.hooks import _unsubscribes_to_consent
from crm_plugins.email.models import Unsubscribe
from crmcore import db
from crmcore.sdk import utcnow
from tests.plugins.channels.conftest import drain, in_tenant, make_lead


def test_one_click_unsubscribe_is_honoured_at_once(env, admin, smtp):
    lead = make_lead(env, email="ada@example.com")
    send = {"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "News", "body": "Our news", "purpose": "marketing"}
    admin("POST", "/messages", json=send, status=201)
    drain(env)
    mail = smtp.accepted[0]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = mail["List-Unsubscribe"].strip("<>")
    assert link in mail.get_content()  # the footer's link too
    path = urlsplit(link).path
    anonymous = env.client("acme")
    page = anonymous.get(path)  # a link scanner's GET changes nothing
    assert page.status_code == 200 and "Stop marketing email to ada@example.com?" in page.get_data(as_text=True)
    with in_tenant(env):
        assert Consent.select().count() == 0
    answer = anonymous.post(path, data={"List-Unsubscribe": "One-Click"})  # what a mail client sends
    assert answer.status_code == 200 and "data-unsubscribed" in answer.get_data(as_text=True)
    with in_tenant(env):  # the channels consent record, for marketing only
        row = Consent.get()
    assert (row.address, row.source, row.channel, row.scope, row.opted_out) == ("ada@example.com", "one-click", "email", "marketing", True)
    assert row.changed_at
    refused = admin("POST", "/messages", json=send, status=422)
    assert "ada@example.com unsubscribed" in refused["errors"]["json"]["to"][0]
    admin("POST", "/messages", json={**send, "purpose": "sales"}, status=201)  # a rep's own mail still goes
    assert anonymous.post(path[:-3] + "xyz").status_code == 404  # a damaged token
    assert env.client("beta").post(path).status_code == 404  # another tenant's host: not theirs


def test_an_unsubscribe_stops_marketing_mail_already_queued_and_an_opt_out_of_everything_stops_sales_mail(env, admin, smtp):
    lead = make_lead(env, email="Grace@Example.com")
    send = {"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "News", "body": "Our news", "purpose": "marketing"}
    queued = admin("POST", "/messages", json=send, status=201)
    own = admin("POST", "/messages", json={**send, "purpose": "sales", "subject": "Our call"}, status=201)
    with in_tenant(env):  # they unsubscribe before the outbox runs
        assert channels.set_consent("grace@example.com", opted_out=True, channel="email", source="link", scope="marketing")
        assert not channels.set_consent("grace@example.com", opted_out=True, channel="email", source="link", scope="marketing")
    drain(env)
    assert [m["Subject"] for m in smtp.accepted] == ["Our call"]
    failed = admin("GET", f"/messages/{queued['id']}")
    assert failed["status"] == "failed" and "grace@example.com opted out of marketing" in failed["failure_reason"]
    assert admin("GET", f"/messages/{own['id']}")["status"] == "sent"
    with in_tenant(env):  # "no messages at all" (as an SMS STOP is): a rep's own mail is refused too
        channels.set_consent("grace@example.com", opted_out=True, channel="email", source="asked by phone")
        channels.set_consent("grace@example.com", opted_out=True, channel="email", source="link", scope="marketing")
        assert Consent.get().scope == "all"  # an unsubscribe does not narrow it
    refused = admin("POST", "/messages", json={**send, "purpose": "sales"}, status=422)
    assert "grace@example.com asked for no messages at all" in refused["errors"]["json"]["to"][0].lower()
    with in_tenant(env):
        channels.set_consent("grace@example.com", opted_out=False, channel="email", source="asked again")
    admin("POST", "/messages", json={**send, "purpose": "sales"}, status=201)


def test_migration_0002_moves_the_old_unsubscribes_into_the_consent_record(env, admin):
    with in_tenant(env) as tenant:
        Unsubscribe.create(address="Old@Example.com", source="one-click", unsubscribed_at=utcnow(), tenant=tenant.id)
        Unsubscribe.create(address="stop@example.com", source="link", unsubscribed_at=utcnow(), tenant=tenant.id)
        channels.set_consent("stop@example.com", opted_out=True, channel="sms", source="STOP")
        _unsubscribes_to_consent(db.database)
        _unsubscribes_to_consent(db.database)  # twice: nothing doubled
        rows = {r.address: (r.scope, r.channel, r.source) for r in Consent.select()}
    assert rows == {"old@example.com": ("marketing", "email", "one-click"), "stop@example.com": ("all", "sms", "STOP")}
    lead = make_lead(env, email="old@example.com")
    refused = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "News",
                                               "body": "x", "purpose": "marketing"}, status=422)
    assert "old@example.com unsubscribed" in refused["errors"]["json"]["to"][0]
