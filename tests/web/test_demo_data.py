"""Demo data (crmcore.builtin.demo, the built-in demo plugin's crm_demo_data hook): what `crm run --demo`
seeds, that it is deterministic, idempotent and fast, and that the pages show it."""

from __future__ import annotations

import datetime as dt
import time

import flask
import peewee
import pytest
from click.testing import CliRunner

from crmcore import db
from crmcore.builtin.demo import seed as demo
from crmcore.cli import DEMO_ADMIN, cli, ensure_demo
from crmcore.db import tenant_context, utcnow
from crmcore.entities.models import (
    Activity,
    AuditEntry,
    Company,
    Contact,
    Deal,
    DealStageChange,
    Lead,
    Note,
    Pipeline,
    Stage,
    Tagging,
    Task,
)
from crmcore.models import User
from crmcore.web.tasks import day_bounds


@pytest.fixture
def demo_env(crm_env):
    """One tenant, "demo" (so it is the one `crm run --demo` seeds), as `crm init` writes."""
    crm_env.write_tenant("demo", name="Demo Company", hostnames=["localhost", "demo.test"])
    crm_env.write_tenant("spare", name="Spare")
    crm_env.write_instance(default_tenant="demo")
    crm_env.create_app()
    return crm_env


def counts(env, slug="demo") -> dict[str, int]:
    with db.database.connection_context(), tenant_context(env.tenant(slug)):
        return {m.__name__: m.select().count() for m in (User, Company, Contact, Lead, Deal, DealStageChange, Activity, Note, Task, Tagging)}


def seed_through_ensure_demo(env) -> float:
    started = time.perf_counter()
    with env.app.app_context(), db.database.connection_context():
        assert ensure_demo(env.crm) == DEMO_ADMIN
    return time.perf_counter() - started


def test_seed_counts_and_variety(demo_env):
    elapsed = seed_through_ensure_demo(demo_env)
    assert elapsed < 5, elapsed
    n = counts(demo_env)
    assert n["User"] == 4  # the admin, a manager, two agents
    assert 100 <= n["Company"] <= 140 and 180 <= n["Contact"] <= 220 and 280 <= n["Lead"] <= 320 and 130 <= n["Deal"] <= 170
    assert n["Activity"] >= 300 and n["Note"] >= 50 and n["Tagging"] >= 100 and n["DealStageChange"] >= 100

    now = utcnow()
    start, end = day_bounds(now)
    with db.database.connection_context(), tenant_context(demo_env.tenant("demo")):
        roles = sorted(u.role for u in User.select())
        assert roles == ["admin", "agent", "agent", "manager"]
        pipeline = Pipeline.get(Pipeline.is_default == True)  # noqa: E712
        per_stage = dict(Deal.select(Deal.stage, peewee.fn.COUNT(Deal.id)).group_by(Deal.stage).tuples())
        stages = list(Stage.select().where(Stage.pipeline == pipeline.id))
        assert all(per_stage.get(s.id, 0) >= 5 for s in stages), per_stage  # every stage has deals
        lost = [s.id for s in stages if s.is_lost]
        won = [s.id for s in stages if s.is_won]
        assert Deal.select().where(Deal.stage.in_(lost) & Deal.lost_reason.is_null()).count() == 0
        assert Deal.select().where(Deal.stage.in_(lost + won) & Deal.closed_at.is_null()).count() == 0
        assert Deal.select().where(Deal.stage.not_in(lost) & Deal.lost_reason.is_null(False)).count() == 0
        # Stage history leads to where each deal is.
        for deal in Deal.select().where(Deal.stage.in_(won)).limit(10):
            last = DealStageChange.select().where(DealStageChange.deal == deal.id).order_by(DealStageChange.changed_at.desc()).first()
            assert last is not None and last.to_stage_id == deal.stage_id and last.changed_at <= now
        assert len({s for (s,) in Lead.select(Lead.status).distinct().tuples()}) == 5
        assert len({s for (s,) in Lead.select(Lead.source).distinct().tuples()}) >= 6
        assert Lead.select().where(Lead.owner.is_null(False)).count() > 200
        assert Lead.select().where(Lead.budget.is_null(False) & Lead.authority.is_null(False) & Lead.need.is_null(False) & Lead.timeline.is_null(False)).count() >= 50
        kinds = {k for (k,) in Activity.select(Activity.kind).distinct().tuples()}
        assert {"call", "email", "meeting"} <= kinds
        oldest, newest = Activity.select(peewee.fn.MIN(Activity.occurred_at), peewee.fn.MAX(Activity.occurred_at)).tuples().get()
        assert now - dt.timedelta(days=100) <= _dt(oldest) and _dt(newest) <= now
        assert _dt(oldest) <= now - dt.timedelta(days=45)  # spread over months, not one day
        admin = User.get(User.email == DEMO_ADMIN[0])
        mine = Task.select().where((Task.assignee == admin.id) & (Task.status == "open"))
        assert mine.where(Task.due_at < start).count() >= 2
        assert mine.where((Task.due_at >= start) & (Task.due_at < end)).count() >= 2
        assert mine.where(Task.due_at >= end).count() >= 2
        assert Task.select().where(Task.status == "done").count() >= 10


def _dt(value):
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def test_second_run_adds_nothing(demo_env):
    seed_through_ensure_demo(demo_env)
    first = counts(demo_env)
    seed_through_ensure_demo(demo_env)
    assert counts(demo_env) == first
    with db.database.connection_context(), tenant_context(demo_env.tenant("demo")):
        assert AuditEntry.select().where(AuditEntry.entity == demo.MARKER_ENTITY).count() == 1
        assert demo.seed(demo_env.tenant("demo")) is None


def test_deterministic(demo_env):
    """The same names in two tenants seeded alike (one random generator, one seed) at the
    same moment: dates are drawn relative to ``now``, and a draw that ends up empty (a
    range that closes before it opens) consumes no random number, so two seeds a second
    apart may rarely differ."""
    now = utcnow()
    with demo_env.app.app_context(), db.database.connection_context():
        for slug in ("demo", "spare"):
            demo.seed(demo_env.tenant(slug), now=now)

    def names(slug):
        with db.database.connection_context(), tenant_context(demo_env.tenant(slug)):
            return (
                [c.name for c in Company.select().order_by(Company.id)],
                [lead.email for lead in Lead.select().order_by(Lead.id)],
                [(d.title, str(d.value)) for d in Deal.select().order_by(Deal.id)],
            )

    assert names("demo") == names("spare")


def test_seed_is_all_or_nothing(demo_env, monkeypatch):
    def broken(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo.Seeder, "tasks", broken)
    with demo_env.app.app_context(), db.database.connection_context(), pytest.raises(RuntimeError):
        demo.seed(demo_env.tenant("demo"))
    assert counts(demo_env)["Lead"] == 0
    monkeypatch.undo()
    with demo_env.app.app_context(), db.database.connection_context():
        assert demo.seed(demo_env.tenant("demo"))["leads"] == 300


def test_crm_run_demo_seeds_through_ensure_demo(demo_env, monkeypatch):
    """`crm run --demo` in-process (serving replaced by a no-op): it seeds the tenant."""
    served = []
    monkeypatch.setattr(flask.Flask, "run", lambda self, **kwargs: served.append(kwargs))
    result = CliRunner().invoke(cli, ["--config", str(demo_env.config_dir), "run", "--demo", "--no-worker", "--port", "5999"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Sign in as admin@demo.example with password demo" in result.output and served
    seeded = counts(demo_env)
    assert seeded["Deal"] >= 130 and seeded["Lead"] == 300
    result = CliRunner().invoke(cli, ["--config", str(demo_env.config_dir), "run", "--demo", "--no-worker", "--port", "5999"], catch_exceptions=False)
    assert result.exit_code == 0 and counts(demo_env) == seeded  # the second start adds nothing


def test_pages_show_the_demo(demo_env):
    seed_through_ensure_demo(demo_env)
    for email in ("sofia.marin@demo.example", DEMO_ADMIN[0]):  # the demo users sign in with the demo password
        client = demo_env.client("demo")
        client.get("/login")
        response = client.post("/login", data={"email": email, "password": "demo", "csrf_token": demo_env.csrf(client)})
        assert response.status_code == 302, email
    with db.database.connection_context(), tenant_context(demo_env.tenant("demo")):
        deal = Deal.select().order_by(Deal.id).first()
    for url in ("/app/", "/app/deals/", f"/app/deals/{deal.id}", "/app/tasks/", "/app/deals/?status=lost"):
        response = client.get(url)
        assert response.status_code == 200, url
    assert "No deals yet" not in client.get("/app/deals/").get_data(as_text=True)


def test_plugins_demo_data_runs_after_the_cores(demo_env):
    """A plugin's crm_demo_data sees the core's demo records (the core's is tryfirst), so it
    can link its sample content to them without seeding the core itself."""
    from crmcore import hookimpl

    seen: list[int] = []

    class Linker:
        @hookimpl
        def crm_demo_data(self, tenant):
            seen.append(Lead.select().count())

    host = demo_env.crm.host
    host.pm.register(Linker(), name="linker")
    from crmcore.plugins import PluginInfo

    host.infos["linker"] = PluginInfo("linker", "0", "", (), None, "linker", "test", always_on=True)
    host._subset_cache.clear()
    try:
        seed_through_ensure_demo(demo_env)
    finally:
        host.unregister("linker")
    assert len(seen) == 1 and seen[0] >= 280, seen
