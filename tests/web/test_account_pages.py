"""Invitations and "forgot password": system mail to an aiosmtpd server, links that work
once and expire, no account enumeration, a rate limit."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from crmcore import accounts, auth, db
from crmcore.accounts import AccountToken
from crmcore.models import User
from crmcore.testing import drain_tasks
from tests.plugins.channels.conftest import SmtpServer


@pytest.fixture
def smtp():
    server = SmtpServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def mail_env(crm_env, smtp):
    crm_env.write_instance(mail={"host": "127.0.0.1", "port": smtp.port, "security": "none", "from_address": "crm@example.test"})
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.write_tenant("other", name="Other Inc")
    crm_env.create_app()
    return crm_env


def signed_in(env, role="admin"):
    client = env.client("acme")
    client.user = env.login(client, "acme", role=role)
    client.csrf = env.csrf(client)
    return client


def link_in(message) -> str:
    return re.search(r"http://acme\.test(/account/\S+)", message.get_content()).group(1)


def anonymous(env, slug="acme"):
    client = env.client(slug)
    client.get("/login")
    client.csrf = env.csrf(client)
    return client


def test_an_invited_user_sets_a_password_once_and_signs_in(mail_env, smtp):
    admin = signed_in(mail_env)
    assert "Invite by email" in admin.get("/app/admin/users/").get_data(as_text=True)
    sent = admin.post("/app/admin/invitations/new", data={"csrf_token": admin.csrf, "email": "New.Person@Example.com", "name": "Nia", "role": "manager"})
    assert sent.status_code == 302
    assert '<span class="badge">invited</span>' in admin.get("/app/admin/users/").get_data(as_text=True)
    drain_tasks(mail_env)
    [mail] = smtp.accepted
    assert mail["To"] == "new.person@example.com" and mail["Subject"] == "You are invited to Acme Ltd"
    link = link_in(mail)
    assert link.startswith("/account/invite/")

    visitor = anonymous(mail_env)
    assert visitor.post("/login", data={"csrf_token": visitor.csrf, "email": "new.person@example.com", "password": ""}).status_code == 401
    page = visitor.get(link)
    assert page.status_code == 200 and "Welcome, Nia" in page.get_data(as_text=True)
    assert visitor.post(link, data={"csrf_token": visitor.csrf, "password": "short", "confirm": "short"}).status_code == 422
    assert visitor.post(link, data={"csrf_token": visitor.csrf, "password": "chosen-pw-1", "confirm": "chosen-pw-1"}).status_code == 302
    assert visitor.get(link).status_code == 404  # single use
    assert visitor.post(link, data={"csrf_token": visitor.csrf, "password": "other-pw-12", "confirm": "other-pw-12"}).status_code == 404
    signed = visitor.post("/login", data={"csrf_token": visitor.csrf, "email": "new.person@example.com", "password": "chosen-pw-1"})
    assert signed.status_code == 302
    with mail_env.app.app_context(), db.connection():
        assert User.select_all_tenants().where(User.email == "new.person@example.com").get().role == "manager"


def test_an_invitation_to_a_user_who_signs_in_is_a_conflict_and_other_tenants_links_do_not_work(mail_env, smtp):
    admin = signed_in(mail_env)
    with mail_env.app.app_context(), db.connection():
        auth.create_user(mail_env.tenant("acme"), "taken@example.com", "a-password")
    taken = admin.post("/app/admin/invitations/new", data={"csrf_token": admin.csrf, "email": "Taken@example.com", "role": "agent"})
    assert taken.status_code == 409
    bad = admin.post("/app/admin/invitations/new", data={"csrf_token": admin.csrf, "email": "not-an-address", "role": "pope"})
    assert bad.status_code == 422
    assert signed_in(mail_env, "manager").get("/app/admin/invitations/new").status_code == 403
    admin.post("/app/admin/invitations/new", data={"csrf_token": admin.csrf, "email": "twice@example.com", "role": "agent"})
    admin.post("/app/admin/invitations/new", data={"csrf_token": admin.csrf, "email": "twice@example.com", "role": "agent"})
    drain_tasks(mail_env)
    first, second = (link_in(m) for m in smtp.accepted)
    visitor = anonymous(mail_env)
    assert visitor.get(first).status_code == 404  # the second invitation voided the first link
    assert visitor.get(second).status_code == 200
    assert anonymous(mail_env, "other").get(second).status_code == 404  # another tenant's host


def test_forgot_password_answers_the_same_for_any_address_and_the_link_expires(mail_env, smtp):
    with mail_env.app.app_context(), db.connection():
        auth.create_user(mail_env.tenant("acme"), "ada@acme.test", "old-password", name="Ada")
    visitor = anonymous(mail_env)
    assert 'href="/account/forgot"' in visitor.get("/login").get_data(as_text=True)
    known = visitor.post("/account/forgot", data={"csrf_token": visitor.csrf, "email": "ADA@acme.test"})
    unknown = visitor.post("/account/forgot", data={"csrf_token": visitor.csrf, "email": "nobody@acme.test"})
    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)
    drain_tasks(mail_env)
    [mail] = smtp.accepted
    assert mail["To"] == "ada@acme.test"
    link = link_in(mail)
    assert link.startswith("/account/reset/")
    with mail_env.app.app_context(), db.connection():
        AccountToken.update_all_tenants(expires_at=db.utcnow() - dt.timedelta(seconds=1)).execute()
    assert visitor.get(link).status_code == 404
    assert visitor.post(link, data={"csrf_token": visitor.csrf, "password": "new-password", "confirm": "new-password"}).status_code == 404
    assert visitor.post("/account/forgot", data={"email": "ada@acme.test"}).status_code == 400  # no CSRF token


def test_a_reset_link_sets_the_password(mail_env, smtp):
    with mail_env.app.app_context(), db.connection():
        auth.create_user(mail_env.tenant("acme"), "bob@acme.test", "old-password", name="Bob")
    visitor = anonymous(mail_env)
    visitor.post("/account/forgot", data={"csrf_token": visitor.csrf, "email": "bob@acme.test"})
    drain_tasks(mail_env)
    link = link_in(smtp.accepted[0])
    assert visitor.post(link, data={"csrf_token": visitor.csrf, "password": "brand-new-pw", "confirm": "brand-new-pw"}).status_code == 302
    with mail_env.app.app_context(), db.connection():
        bob = User.select_all_tenants().where(User.email == "bob@acme.test").get()
        assert auth.check_password(bob, "brand-new-pw")


def test_forgot_password_is_rate_limited_per_address_and_per_ip(mail_env, smtp):
    with mail_env.app.app_context(), db.connection():
        auth.create_user(mail_env.tenant("acme"), "cy@acme.test", "old-password")
    visitor = anonymous(mail_env)
    answers = [visitor.post("/account/forgot", data={"csrf_token": visitor.csrf, "email": "cy@acme.test"}).status_code
               for _ in range(accounts.FORGOT_PER_IP + 1)]
    assert answers == [200] * accounts.FORGOT_PER_IP + [429]
    drain_tasks(mail_env)
    assert len(smtp.accepted) == accounts.FORGOT_PER_ADDRESS
