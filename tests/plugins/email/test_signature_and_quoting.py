"""Each user's own signature, set on /app/email/signature, under every email they write; a
reply's quoted text and signature folded where it is shown (the record's email panel)."""

from __future__ import annotations

from tests.plugins.channels.conftest import drain, make_lead


def test_a_users_signature_goes_under_their_emails_only(env, admin, smtp):
    lead = make_lead(env, email="ada@example.com")
    client = env.client("acme")
    env.login(client, role="agent")
    assert client.get("/app/email/signature").status_code == 200
    csrf = env.csrf(client)
    too_long = client.post("/app/email/signature", data={"csrf_token": csrf, "text": "x" * 2001})
    assert too_long.status_code == 422 and "at most 2000 characters" in too_long.get_data(as_text=True)
    saved = client.post("/app/email/signature", data={"csrf_token": csrf, "text": "Ada Agent\r\nAcme <Sales>"})
    assert saved.status_code == 302
    assert "Acme &lt;Sales&gt;" in client.get("/app/email/signature").get_data(as_text=True)
    sent = client.post(f"/app/email/compose/lead/{lead.id}", data={"csrf_token": csrf, "to": "ada@example.com", "subject": "Hi", "body": "Hello Ada"})
    assert sent.status_code == 302
    admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Other", "body": "From the admin",
                                     "html": "<p>From the admin</p>"}, status=201)
    drain(env)
    mine, theirs = smtp.accepted
    assert mine.get_content().replace("\r\n", "\n") == "Hello Ada\n\n-- \nAda Agent\nAcme <Sales>\n"
    assert "-- " not in theirs.get_body(("plain",)).get_content()  # the admin has no signature
    viewer = env.client("acme")
    env.login(viewer, role="viewer")
    assert viewer.get("/app/email/signature").status_code == 403


def test_quoted_text_and_signatures_are_told_apart_from_the_new_text():
    from crm_plugins.email.quoting import split_quoted

    reply = "Yes please.\r\n\r\nOn Mon, 1 Dec 2026 at 10:00, Acme Sales\r\n<sales+ab12@acme.test> wrote:\r\n> Our offer\r\n> -- \r\n> Ada Agent"
    assert split_quoted(reply) == ("Yes please.", "On Mon, 1 Dec 2026 at 10:00, Acme Sales\n<sales+ab12@acme.test> wrote:\n> Our offer\n> -- \n> Ada Agent")
    assert split_quoted("Thanks\n-- \nGrace\nCTO") == ("Thanks", "-- \nGrace\nCTO")
    assert split_quoted("Hi\n\n-----Original Message-----\nFrom: x") == ("Hi", "-----Original Message-----\nFrom: x")
    # quoted lines answered in between are the writer's own text: nothing folds
    inline = "> your question\nMy answer\n> another\nAnswer two"
    assert split_quoted(inline) == (inline, "")
    assert split_quoted("From: our side, all fine\nBye") == ("From: our side, all fine\nBye", "")


def test_the_panel_folds_the_quote_of_a_received_reply(env, admin):
    import crm_plugins.channels.contrib as channels
    from tests.plugins.channels.conftest import in_tenant

    lead = make_lead(env, email="ada@example.com")
    with in_tenant(env) as tenant:
        channels.receive(tenant, "email", address="ada@example.com", subject="Re: Offer", message_id="<q@example.com>",
                         body_text="Yes please.\n\nOn Mon, Acme Sales <sales@acme.test> wrote:\n> Our <b>offer</b>")
    client = env.client("acme")
    env.login(client)
    page = client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert '<div class="email-text small" data-email-text style="white-space: pre-line">Yes please.</div>' in page
    assert "<details class=\"small\" data-quoted><summary>Quoted text</summary>" in page and "&gt; Our &lt;b&gt;offer&lt;/b&gt;" in page
