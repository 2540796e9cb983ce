"""In-app notifications (crmcore.notifications): notify, preferences, the API, the page
and the bell, the live topic, and task reminders. Tenants: acme and beta."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import pytest

from crmcore import auth, db, notifications
from crmcore.db import utcnow
from crmcore.entities.errors import Invalid
from crmcore.notifications import Notification, notify
from tests.core.test_realtime_ws import POLICY_VIOLATION, WsServer, recv_close_code, recv_event


@pytest.fixture
def env(crm_env: Any) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["acme.test", "127.0.0.1"])
    crm_env.write_tenant("beta", name="Beta Co")
    crm_env.create_app()
    return crm_env


def user(env: Any, slug: str = "acme", role: str = "agent", active: bool = True) -> Any:
    with env.app.app_context(), db.database.connection_context():
        made = auth.create_user(env.tenant(slug), f"{role}-{uuid.uuid4().hex[:6]}@{slug}.test", "secret-pw", role=role, name=role.title())
        if not active:
            with db.tenant_context(env.tenant(slug)):
                type(made).update(active=False).where(type(made).id == made.id).execute()
        return made


def token_for(env: Any, person: Any, slug: str = "acme") -> str:
    with env.app.app_context(), db.database.connection_context():
        return auth.create_token(env.tenant(slug), person.role, name="t", user=person)[1]


def api(env: Any, token: str, method: str, url: str, json: Any = None, status: int = 200) -> Any:
    response = env.client("acme").open(f"/api/v1{url}", method=method, json=json, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json(silent=True)


def in_acme(env: Any) -> Any:
    class Ctx:
        def __enter__(self) -> Any:
            self.stack = [env.app.app_context(), db.connection(), db.tenant_context(env.tenant("acme"))]
            for c in self.stack:
                c.__enter__()
            return env.tenant("acme")

        def __exit__(self, *exc: Any) -> None:
            for c in reversed(self.stack):
                c.__exit__(*exc)

    return Ctx()


def test_notify_honours_mutes_and_tenants_and_announces(env: Any, captured_signals: Any) -> None:
    ann, bob, gone, stranger = user(env), user(env), user(env, active=False), user(env, "beta")
    with in_acme(env) as acme:
        notifications.set_muted(bob.id, {"automation"})
        with captured_signals("notification_created") as sent:
            count = notify(acme, [ann.id, bob.id, gone.id, stranger.id, ann.id], title="Lead is hot", text="Score 85", link="/app/leads/1", kind="automation")
            assert count == 1  # bob muted automation, gone is inactive, stranger is beta's
            assert notify(acme, [bob.id], title="Hello") == 1  # general: not muted
            assert notify(acme, [], title="Nobody") == 0
        assert [(s[1].slug, [n["user_id"] for n in s[2]["notifications"]]) for s in sent] == [("acme", [ann.id]), ("acme", [bob.id])]
        assert sent[0][2]["notifications"][0]["title"] == "Lead is hot"
        assert notifications.unread_counts([ann.id, bob.id, gone.id]) == {ann.id: 1, bob.id: 1, gone.id: 0}
        for bad in ({"title": " "}, {"title": "x", "kind": "Bad Kind"}, {"title": "x", "link": "//evil.example"}, {"title": "x", "link": "javascript:alert(1)"}):
            with pytest.raises(Invalid):
                notify(acme, [ann.id], **bad)
        # inside a transaction that rolls back, nothing is stored
        with pytest.raises(RuntimeError), db.atomic():
            notify(acme, [ann.id], title="rolled back")
            raise RuntimeError
        assert notifications.unread_count(ann.id) == 1


def test_api_lists_marks_and_sets_preferences_of_own_only(env: Any) -> None:
    ann, bob = user(env), user(env)
    with in_acme(env) as acme:
        for i in range(3):
            notify(acme, [ann.id], title=f"n{i}", kind="task_reminder")
        notify(acme, [bob.id], title="bob's")
        bobs = Notification.get(Notification.user == bob.id).id
    token = token_for(env, ann)
    page = api(env, token, "GET", "/notifications?limit=2")
    assert [n["title"] for n in page["items"]] == ["n2", "n1"] and page["unread"] == 3 and page["next_cursor"]
    assert api(env, token, "GET", f"/notifications?cursor={page['next_cursor']}")["items"][0]["title"] == "n0"
    assert api(env, token, "GET", "/notifications/unread-count") == {"unread": 3}
    first = page["items"][0]["id"]
    assert api(env, token, "POST", f"/notifications/{first}/read")["read_at"]
    api(env, token, "POST", f"/notifications/{bobs}/read", status=404)  # another user's
    assert api(env, token, "GET", "/notifications?unread=true")["unread"] == 2
    assert api(env, token, "POST", "/notifications/read-all") == {"marked": 2}
    assert api(env, token, "GET", "/notifications/unread-count") == {"unread": 0}
    prefs = api(env, token, "PUT", "/notifications/preferences", {"muted": ["task_reminder"]})
    assert prefs["muted"] == ["task_reminder"] and "general" in prefs["kinds"]
    api(env, token, "PUT", "/notifications/preferences", {"muted": ["Not A Kind"]}, status=422)
    api(env, token, "PUT", "/notifications/preferences", {"muted": "x"}, status=422)
    with in_acme(env) as acme:
        assert notify(acme, [ann.id], title="muted", kind="task_reminder") == 0
    # a token without a user has no notifications (empty lists; it cannot set preferences); no token: 401
    userless = env.token("acme")
    assert api(env, userless, "GET", "/notifications", status=200) == {"items": [], "next_cursor": None, "unread": 0}
    assert api(env, userless, "GET", "/notifications/unread-count", status=200) == {"unread": 0}
    api(env, userless, "PUT", "/notifications/preferences", {"muted": []}, status=422)
    api(env, "", "GET", "/notifications/unread-count", status=401)


def test_bell_page_and_forms(env: Any) -> None:
    client = env.client("acme")
    me = env.login(client, role="viewer")
    with in_acme(env) as acme:
        notify(acme, [me.id], title="Call Ada back", link="/app/tasks", kind="task_reminder")
        notify(acme, [me.id], title="Plain news")
        rows = list(Notification.select().where(Notification.user == me.id).order_by(Notification.id))
    page = client.get("/app/notifications/").get_data(as_text=True)
    assert 'data-bell-count>2</span>' in page and "Call Ada back" in page and "Task reminders" in page
    assert f'data-topic="user:{me.id}:notifications"' in page
    csrf = env.csrf(client)
    opened = client.post(f"/app/notifications/{rows[0].id}/read", data={"csrf_token": csrf, "open": "1"})
    assert opened.status_code == 302 and opened.headers["Location"].endswith("/app/tasks")
    assert 'data-bell-count>1</span>' in client.get("/app/").get_data(as_text=True)
    client.post("/app/notifications/preferences", data={"csrf_token": csrf, "offered": ["general", "task_reminder"], "wanted": ["general"]})
    with in_acme(env):
        assert notifications.muted_kinds(me.id) == {"task_reminder"}
    client.post("/app/notifications/read-all", data={"csrf_token": csrf})
    assert "data-bell-count hidden>0" in client.get("/app/notifications/").get_data(as_text=True)


def test_live_count_on_the_users_own_topic_only(env: Any) -> None:
    ann, bob = user(env), user(env)
    server = WsServer(env.app)
    server.thread.start()
    try:
        ws = server.subscribe(token_for(env, ann), f"topics=user:{ann.id}:notifications")
        with in_acme(env) as acme:
            notify(acme, [ann.id], title="Live one", link="/app/tasks")
        event = recv_event(ws)
        assert event["topic"] == f"user:{ann.id}:notifications"
        assert event["data"]["unread"] == 1 and event["data"]["latest"]["title"] == "Live one"
        with in_acme(env):
            notifications.mark_read(ann.id)
        assert recv_event(ws)["data"]["unread"] == 0
        # bob may not listen to ann's notifications
        spy = server.connect(f"topics=user:{ann.id}:notifications", token=token_for(env, bob))
        assert recv_close_code(spy) == POLICY_VIOLATION
        server.subscribe(token_for(env, bob), f"topics=user:{bob.id}:notifications")  # his own: fine
    finally:
        server.stop()


def _task(title: str, assignee: Any, reminder_at: dt.datetime | None, status: str = "open") -> Any:
    from crmcore.entities.models import Task

    return Task.create(title=title, assignee=assignee.id if assignee else None, reminder_at=reminder_at, status=status, due_at=utcnow())


def test_task_reminders_fire_once_even_with_two_sweeps_at_once(env: Any) -> None:
    from crmcore.entities.models import Task

    ann, bob = user(env), user(env)
    now = utcnow()
    with in_acme(env) as acme:
        due = [_task(f"due {i}", ann if i % 2 else bob, now - dt.timedelta(seconds=5)) for i in range(6)]
        _task("later", ann, now + dt.timedelta(hours=1))
        _task("done", ann, now - dt.timedelta(seconds=5), status="done")
        _task("nobody", None, now - dt.timedelta(seconds=5))
    results: list[int] = []
    barrier = threading.Barrier(2)

    def sweep() -> None:
        with env.app.app_context(), db.connection():
            barrier.wait()
            results.append(notifications.send_task_reminders(acme))

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [0, 6]
    with in_acme(env):
        assert notifications.send_task_reminders(acme) == 0
        titles = sorted(n.title for n in Notification.select().where(Notification.kind == "task_reminder"))
        assert titles == sorted(f"Reminder: due {i}" for i in range(6))
        assert notifications.unread_counts([ann.id, bob.id]) == {ann.id: 3, bob.id: 3}
        # a new reminder time reminds again (the API path clears reminder_sent_at)
        task_id = due[0].id
    token = token_for(env, ann)
    api(env, token, "PATCH", f"/tasks/{task_id}", {"reminder_at": (now - dt.timedelta(seconds=1)).isoformat()})
    with in_acme(env):
        assert Task.get_by_id(task_id).reminder_sent_at is None
        assert notifications.send_task_reminders(acme) == 1


def test_reminder_job_is_declared_and_runs_for_every_tenant(env: Any) -> None:
    from crmcore.jobs import Scheduler

    ann = user(env)
    with in_acme(env):
        _task("due", ann, utcnow() - dt.timedelta(seconds=1))
    scheduler = Scheduler(env.crm, holder="test")
    assert scheduler.jobs["core:task_reminders"][1].trigger_args == {"seconds": 60}
    assert scheduler.run_job("core:task_reminders") == ["acme", "beta"]
    with in_acme(env):
        assert notifications.unread_count(ann.id) == 1


def test_migration_0007_upgrades_a_database_from_before_notifications(env: Any) -> None:
    """A database migrated before notifications: the tables and Task.reminder_sent_at are
    added, and reminders already past count as sent (no flood of old reminders)."""
    from crmcore.entities.models import Task
    from crmcore.migrations import migrate
    from crmcore.models import MigrationRecord

    ann = user(env)
    with in_acme(env):
        past = _task("long ago", ann, utcnow() - dt.timedelta(days=30))
        future = _task("tomorrow", ann, utcnow() + dt.timedelta(days=1))
    with env.app.app_context(), db.connection():
        database = db.database.obj
        database.execute_sql("DROP TABLE crm_notification_mute")
        database.execute_sql("DROP TABLE crm_notification")
        database.execute_sql("ALTER TABLE crm_task DROP COLUMN reminder_sent_at")
        MigrationRecord.delete().where((MigrationRecord.plugin == "core") & (MigrationRecord.name == "0007_notifications")).execute()
        assert migrate(env.crm.host, report=lambda m: None) == ["core:0007_notifications"]
    with in_acme(env) as acme:
        assert Task.get_by_id(past.id).reminder_sent_at is not None and Task.get_by_id(future.id).reminder_sent_at is None
        assert notifications.send_task_reminders(acme) == 0
        assert notify(acme, [ann.id], title="works") == 1
