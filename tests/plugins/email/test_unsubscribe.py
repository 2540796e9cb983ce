"""Marketing email carries a signed unsubscribe link and the RFC 8058 one-click headers;
an unsubscribe is recorded with its time and source and honoured at once."""

from __future__ import annotations

from urllib.parse import urlsplit

from crm_plugins.email.models import Unsubscribe
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
        assert Unsubscribe.select().count() == 0
    answer = anonymous.post(path, data={"List-Unsubscribe": "One-Click"})  # what a mail client sends
    assert answer.status_code == 200 and "data-unsubscribed" in answer.get_data(as_text=True)
    with in_tenant(env):
        row = Unsubscribe.get()
    assert (row.address, row.source) == ("ada@example.com", "one-click") and row.unsubscribed_at
    refused = admin("POST", "/messages", json=send, status=422)
    assert "ada@example.com unsubscribed" in refused["errors"]["json"]["to"][0]
    admin("POST", "/messages", json={**send, "purpose": "sales"}, status=201)  # a rep's own mail still goes
    assert anonymous.post(path[:-3] + "xyz").status_code == 404  # a damaged token
    assert env.client("beta").post(path).status_code == 404  # another tenant's host: not theirs
