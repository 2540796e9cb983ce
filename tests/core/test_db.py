"""Tenant scoping, after-commit callbacks and thread safety of the database layer."""

from __future__ import annotations

import threading

import peewee
import pytest

from crmcore import db, signals
from crmcore.db import NoTenantError, tenant_context
from crmcore.models import User


@pytest.fixture
def two_tenants(app, tenant_factory):
    with db.database.connection_context():
        a = app.extensions["crm"].tenant("acme")
    b = tenant_factory("other")
    return a, b


def test_scoped_queries_cannot_see_other_tenants(app, two_tenants):
    a, b = two_tenants
    with db.database.connection_context():
        with tenant_context(a):
            ua = User.create(email="x@a.test")
        with tenant_context(b):
            User.create(email="x@b.test")
            assert [u.email for u in User.select()] == ["x@b.test"]
            assert User.get_or_none(User.id == ua.id) is None
            with pytest.raises(User.DoesNotExist):
                User.get_by_id(ua.id)
            # update/delete without a filter touch only this tenant's rows
            assert User.update(name="renamed").execute() == 1
            assert User.delete().execute() == 1
        with tenant_context(a):
            assert [(u.email, u.name) for u in User.select()] == [("x@a.test", "")]


def test_scoped_query_without_tenant_raises(app):
    with db.database.connection_context():
        with pytest.raises(NoTenantError):
            list(User.select())
        with pytest.raises(NoTenantError):
            User.create(email="nobody@x.test")


def test_new_rows_get_the_current_tenant(app, two_tenants):
    a, _ = two_tenants
    with db.database.connection_context(), tenant_context(a):
        user = User.create(email="n@a.test")
        assert user.tenant_id == a.id


def test_on_commit_runs_after_commit_only(app):
    ran = []
    with db.database.connection_context():
        with db.atomic():
            db.on_commit(lambda: ran.append("outer"))
            assert ran == []
        assert ran == ["outer"]
        with pytest.raises(RuntimeError):
            with db.atomic():
                db.on_commit(lambda: ran.append("rolled back"))
                raise RuntimeError("boom")
        assert ran == ["outer"]
        with db.atomic():
            try:
                with db.atomic():  # savepoint
                    db.on_commit(lambda: ran.append("savepoint rolled back"))
                    raise ValueError
            except ValueError:
                pass
            with db.atomic():
                db.on_commit(lambda: ran.append("savepoint kept"))
        assert ran == ["outer", "savepoint kept"]


def test_signal_sent_after_commit_and_not_on_rollback(app, captured_signals):
    with db.database.connection_context():
        tenant = app.extensions["crm"].tenant("acme")
        with captured_signals("entity_created") as sent:
            with db.atomic():
                signals.send("entity_created", tenant, entity="thing", record=None)
                assert sent == []
            assert [s[0] for s in sent] == ["entity_created"] and sent[0][1] is tenant
            with pytest.raises(KeyError):
                with db.atomic():
                    signals.send("entity_created", tenant, entity="thing", record=None)
                    raise KeyError
            assert len(sent) == 1


def test_concurrent_writers_from_threads(app):
    with db.database.connection_context():
        tenant = app.extensions["crm"].tenant("acme")
    errors = []

    def writer(n):
        try:
            with db.database.connection_context(), tenant_context(tenant):
                for i in range(20):
                    with db.atomic():
                        User.create(email=f"t{n}-{i}@acme.test")
        except Exception as exc:  # collected: an assert in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with db.database.connection_context(), tenant_context(tenant):
        assert User.select().count() == 80


def test_unique_email_per_tenant(app, two_tenants):
    a, b = two_tenants
    with db.database.connection_context():
        with tenant_context(a):
            User.create(email="same@x.test")
        with tenant_context(b):
            User.create(email="same@x.test")  # another tenant: fine
        with tenant_context(a), pytest.raises(peewee.IntegrityError):
            with db.atomic():
                User.create(email="same@x.test")


# --------------------------------------------------------------------------- one database per app


def _rows(path, sql: str) -> list[tuple]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_two_apps_in_one_process_each_use_their_own_database(tmp_path):
    """A second app no longer repoints the first: db.database resolves per app context,
    and the first app's worker thread and scheduler lease use the first app's file."""
    import time

    from crmcore.jobs import Scheduler
    from crmcore.models import Task
    from crmcore.tasks import Worker
    from crmcore.testing import CrmEnv

    files = {name: tmp_path / name / "crm.db" for name in ("a", "b")}
    envs = {name: CrmEnv(tmp_path / name, f"sqlite:///{path}") for name, path in files.items()}
    try:
        for env in envs.values():
            env.write_tenant("acme")
        app_a = envs["a"].create_app()
        app_b = envs["b"].create_app()  # initialised last: what plain code outside an app gets
        crm_a = app_a.extensions["crm"]
        assert crm_a.database is not app_b.extensions["crm"].database

        # A write through A's app context lands in A's file only.
        with app_a.app_context(), db.database.connection_context(), tenant_context(envs["a"].tenant("acme")):
            User.create(email="only-in-a@acme.test")
        assert _rows(files["a"], "SELECT email FROM crm_users") == [("only-in-a@acme.test",)]
        assert _rows(files["b"], "SELECT email FROM crm_users") == []

        # Each app's requests see their own data: a lead made through A's API is not in B's.
        for name, env in envs.items():
            client = env.client("acme")
            headers = {"Authorization": f"Bearer {env.token('acme')}"}
            assert client.post("/api/v1/leads", json={"name": f"Lead of {name}"}, headers=headers).status_code == 201
            listed = client.get("/api/v1/leads", headers=headers).get_json()
            assert [lead["name"] for lead in listed["items"]] == [f"Lead of {name}"]
            # Signing in reads the user from the app's own database.
            assert env.login(env.client("acme"), "acme", email=f"person@{name}.test") is not None

        # A's worker thread (outside any app context) claims from A's file.
        with app_a.app_context(), db.database.connection_context():
            Task.create(kind="nobody.handles_this", max_attempts=1)
        worker = Worker(crm_a, worker_id="two-apps")
        thread = threading.Thread(target=worker.run_forever, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while _rows(files["a"], "SELECT status FROM crm_task_queue") != [("dead",)] and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            worker.stop()
            worker.join(10)
        assert _rows(files["a"], "SELECT status FROM crm_task_queue") == [("dead",)]
        assert _rows(files["b"], "SELECT status FROM crm_task_queue") == []

        # A's scheduler takes its lease (from an APScheduler-like thread) in A's file.
        scheduler = Scheduler(crm_a, holder="holder-a")
        leader: list[bool] = []
        lease_thread = threading.Thread(target=lambda: leader.append(scheduler.is_leader()))
        lease_thread.start()
        lease_thread.join(10)
        assert leader == [True]
        assert _rows(files["a"], "SELECT holder FROM crm_leases") == [("holder-a",)]
        assert _rows(files["b"], "SELECT holder FROM crm_leases") == []
    finally:
        for env in envs.values():
            env.close()
