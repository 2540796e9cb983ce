"""/api/v1/analytics/leads: the figures on a known data set, the period filter, agents
who see only their own leads, permissions, and a constant number of queries."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging

from crmcore import auth, db
from crmcore.entities.models import Lead

T0 = dt.datetime(2024, 1, 1)

# (status, source, days after T0)
DATA = [
    ("new", "form", 0), ("new", "form", 1), ("new", "chat", 2), ("new", "import", 40),
    ("contacted", "form", 3), ("contacted", "chat", 41),
    ("qualified", "form", 4),
    ("converted", "chat", 5), ("converted", "form", 42), ("converted", "import", 43),
]


def seed(env, slug: str, rows, owner=None) -> None:
    with db.connection(), db.tenant_context(env.tenant(slug)):
        Lead.insert_many([{"name": f"L{i}", "status": status, "source": source, "created_at": T0 + dt.timedelta(days=days), "owner": owner} for i, (status, source, days) in enumerate(rows)]).execute()


def test_counts_and_conversion_rate(api, api_env):
    seed(api_env, "acme", DATA)
    body = api.get("/api/v1/analytics/leads").json
    assert body == {
        "total": 10,
        "converted": 3,
        "conversion_rate": 0.3,
        "by_status": {"new": 4, "contacted": 2, "qualified": 1, "unqualified": 0, "converted": 3},
        "by_source": {"form": 5, "chat": 3, "import": 2},
    }
    january = api.get("/api/v1/analytics/leads?created_after=2024-01-01T00:00:00Z&created_before=2024-02-01T00:00:00").json
    assert (january["total"], january["converted"], january["conversion_rate"]) == (6, 1, round(1 / 6, 4))
    assert january["by_source"] == {"form": 4, "chat": 2}
    later = api.get("/api/v1/analytics/leads?created_after=2024-02-01T00:00:00").json
    assert (later["total"], later["converted"], later["by_status"]["new"]) == (4, 2, 1)
    assert api.get("/api/v1/analytics/leads?created_after=yesterday").status_code == 422


def test_empty_and_other_tenant(api, as_role, api_env):
    seed(api_env, "acme", DATA)
    body = as_role("admin", "other").get("/api/v1/analytics/leads").json
    assert body["total"] == 0 and body["conversion_rate"] == 0.0 and body["by_source"] == {}
    assert set(body["by_status"].values()) == {0}


def test_roles_and_agents_who_see_their_own(api_env, as_role):
    assert as_role("viewer").get("/api/v1/analytics/leads").status_code == 200
    assert api_env.client("acme").get("/api/v1/analytics/leads").status_code == 401
    api_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"agents_see_own_only": True}})
    api_env.reload()
    with db.connection():
        someone = auth.create_user(api_env.tenant("acme"), "rep@acme.test", "pw-secret", role="agent")
    seed(api_env, "acme", DATA[:4], owner=someone.id)  # someone else's: hidden from this agent's token
    seed(api_env, "acme", DATA[4:])
    agent = as_role("agent").get("/api/v1/analytics/leads").json
    assert agent["total"] == 6 and agent["by_status"]["new"] == 0
    assert as_role("manager").get("/api/v1/analytics/leads").json["total"] == 10


@contextlib.contextmanager
def counted_queries():
    """Count the SQL statements peewee runs in the block (it logs each at DEBUG)."""
    seen: list[str] = []

    class Counter(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("peewee")
    handler, level = Counter(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_constant_number_of_queries(api, api_env):
    api.get("/api/v1/analytics/leads")  # warm caches (token, tenant, settings)
    seed(api_env, "acme", DATA)
    with counted_queries() as few:
        assert api.get("/api/v1/analytics/leads").json["total"] == 10
    seed(api_env, "acme", DATA * 50)
    with counted_queries() as many:
        assert api.get("/api/v1/analytics/leads").json["total"] == 510
    assert len(many) == len(few)
    assert sum("GROUP BY" in q for q in many) == 2
