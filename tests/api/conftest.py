"""Fixtures for the entity API tests: tenant acme and tenant other, a token per role."""

from __future__ import annotations

import pytest


class Api:
    """A test client bound to one tenant and role, speaking JSON with a bearer token."""

    def __init__(self, env, slug: str, role: str):
        self.client = env.client(slug)
        self.token = env.token(slug, role)
        self.slug = slug
        self.role = role

    def _headers(self, headers):
        out = {"Authorization": f"Bearer {self.token}"}
        out.update(headers or {})
        return out

    def get(self, url, headers=None, **kw):
        return self.client.get(url, headers=self._headers(headers), **kw)

    def post(self, url, json=None, headers=None, **kw):
        return self.client.post(url, json=json, headers=self._headers(headers), **kw)

    def patch(self, url, json=None, headers=None, **kw):
        return self.client.patch(url, json=json, headers=self._headers(headers), **kw)

    def put(self, url, json=None, headers=None, **kw):
        return self.client.put(url, json=json, headers=self._headers(headers), **kw)

    def delete(self, url, headers=None, **kw):
        return self.client.delete(url, headers=self._headers(headers), **kw)


@pytest.fixture
def api_env(crm_env):
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.write_tenant("other", name="Other Inc")
    crm_env.create_app()
    return crm_env


@pytest.fixture
def api(api_env):
    """Admin of acme."""
    return Api(api_env, "acme", "admin")


@pytest.fixture
def as_role(api_env):
    def make(role: str, slug: str = "acme") -> Api:
        return Api(api_env, slug, role)

    return make


@pytest.fixture
def walk_env(crm_env):
    """acme and other, each with every installed plugin on (so plugin APIs are walked)."""
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.write_tenant("other", name="Other Inc")
    app = crm_env.create_app()
    plugins = sorted(n for n, i in app.extensions["crm"].host.infos.items() if not i.always_on and not i.error)
    if plugins:
        # email: a sender and an SMTP server, so that messages can be queued (none is sent)
        settings = {"email": {"from_address": "walk@example.com", "smtp_host": "127.0.0.1", "smtp_port": 9}} if "email" in plugins else {}
        crm_env.write_tenant("acme", name="Acme Ltd", plugins=plugins, settings=settings)
        crm_env.write_tenant("other", name="Other Inc", plugins=plugins, settings=settings)
        crm_env.reload()
    if "chat" in plugins:
        for slug in ("acme", "other"):
            _visitor_conversation(crm_env, slug)
    return crm_env


def _visitor_conversation(crm_env, slug: str) -> None:
    """A chat conversation, which only a website visitor can start (through the chat's
    public API, outside the OpenAPI document), so the walk has one of each tenant's."""
    from crmcore import db

    client = crm_env.client(slug)
    with crm_env.app.test_request_context(), db.database.connection_context():
        from crm_plugins.chat import service

        key = service.public_key(crm_env.tenant(slug))
    started = client.post("/api/v1/chat/public/session", json={"name": f"Visitor of {slug}"}, headers={"X-Chat-Key": key})
    assert started.status_code == 201, started.get_data(as_text=True)
    token = started.get_json()["token"]
    said = client.post("/api/v1/chat/public/messages", json={"content": "Hello", "client_id": "walk-1"}, headers={"X-Chat-Key": key, "X-Chat-Token": token})
    assert said.status_code in (200, 201), said.get_data(as_text=True)
