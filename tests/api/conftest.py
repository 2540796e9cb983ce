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
        crm_env.write_tenant("acme", name="Acme Ltd", plugins=plugins)
        crm_env.write_tenant("other", name="Other Inc", plugins=plugins)
        crm_env.reload()
    return crm_env
