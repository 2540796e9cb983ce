"""Fixtures for the web page tests: tenants acme and other, and signed-in clients.

``signed_in(role, slug)`` returns a Flask test client of ``slug`` signed in as a new user
with ``role``, with ``client.csrf`` (the session's CSRF token, for form posts) and
``client.user`` (the user) set.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def web_env(crm_env):
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.write_tenant("other", name="Other Inc")
    crm_env.create_app()
    return crm_env


@pytest.fixture
def signed_in(web_env):
    def make(role: str = "admin", slug: str = "acme", **kwargs):
        client = web_env.client(slug)
        client.user = web_env.login(client, slug, role=role, **kwargs)
        client.csrf = web_env.csrf(client)
        return client

    return make


@pytest.fixture
def in_tenant(web_env):
    """``with in_tenant("acme"): ...``: a database connection with the tenant as the
    current tenant, to seed or inspect records directly."""
    import contextlib

    from crmcore import db

    @contextlib.contextmanager
    def use(slug: str = "acme"):
        tenant = web_env.tenant(slug)
        with db.database.connection_context(), db.tenant_context(tenant):
            yield tenant

    return use
