"""Each user's own signature, set on /app/email/signature, under every email they write."""

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
