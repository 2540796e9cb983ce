"""/app/profile: one's own password, time zone, digest and notification kinds."""

from __future__ import annotations

from crmcore import auth, db
from crmcore.models import User
from crmcore.notifications import NotificationMute


def fresh(web_env, user_id):
    with web_env.app.app_context(), db.connection():
        return User.select_all_tenants().where(User.id == user_id).get()


def test_the_profile_page_is_linked_from_the_header_for_every_role(signed_in):
    for role in ("admin", "viewer"):
        client = signed_in(role)
        page = client.get("/app/").get_data(as_text=True)
        assert 'href="/app/profile/"' in page
        profile = client.get("/app/profile/")
        assert profile.status_code == 200
        assert client.user.email in profile.get_data(as_text=True)


def test_changing_the_password_needs_the_current_one(signed_in, web_env):
    client = signed_in("agent")
    wrong = client.post("/app/profile/password", data={"csrf_token": client.csrf, "current": "not-it", "password": "new-password-1", "confirm": "new-password-1"})
    assert wrong.status_code == 422
    assert "That is not your current password." in wrong.get_data(as_text=True)
    short = client.post("/app/profile/password", data={"csrf_token": client.csrf, "current": "secret-pw", "password": "short", "confirm": "short"})
    assert short.status_code == 422 and "At least 8 characters" in short.get_data(as_text=True)
    differ = client.post("/app/profile/password", data={"csrf_token": client.csrf, "current": "secret-pw", "password": "new-password-1", "confirm": "new-password-2"})
    assert differ.status_code == 422 and "The two passwords differ." in differ.get_data(as_text=True)
    assert client.post("/app/profile/password", data={"current": "secret-pw", "password": "new-password-1", "confirm": "new-password-1"}).status_code == 400  # no CSRF token
    done = client.post("/app/profile/password", data={"csrf_token": client.csrf, "current": "secret-pw", "password": "new-password-1", "confirm": "new-password-1"})
    assert done.status_code == 302
    with web_env.app.app_context(), db.connection():
        user = fresh(web_env, client.user.id)
        assert auth.check_password(user, "new-password-1") and not auth.check_password(user, "secret-pw")


def test_time_zone_digest_and_muted_kinds_are_saved_together(signed_in, web_env):
    client = signed_in("agent")
    form = {"csrf_token": client.csrf, "time_zone": "Europe/Berlin", "digest_daily": "1",
            "offered": ["general", "task_reminder"], "wanted": ["general"]}
    assert client.post("/app/profile/preferences", data=form).status_code == 302
    user = fresh(web_env, client.user.id)
    assert (user.time_zone, user.digest_daily) == ("Europe/Berlin", True)
    with web_env.app.app_context(), db.connection():
        assert {m.kind for m in NotificationMute.select_all_tenants().where(NotificationMute.user == user.id)} == {"task_reminder"}
    page = client.get("/app/profile/").get_data(as_text=True)
    assert '<option value="Europe/Berlin" selected>' in page
    bad = client.post("/app/profile/preferences", data=dict(form, time_zone="Mars/Olympus", wanted=[]))
    assert bad.status_code == 422 and "Choose a time zone from the list." in bad.get_data(as_text=True)
    with web_env.app.app_context(), db.connection():
        assert {m.kind for m in NotificationMute.select_all_tenants().where(NotificationMute.user == user.id)} == {"task_reminder"}
    assert fresh(web_env, client.user.id).time_zone == "Europe/Berlin"


def test_the_profile_needs_a_session(web_env):
    response = web_env.client("acme").get("/app/profile/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_times_are_shown_in_the_users_time_zone(signed_in, web_env):
    import datetime as dt

    from crmcore import notifications
    from crmcore.notifications import Notification

    client = signed_in("agent")
    with web_env.app.app_context(), db.connection(), db.tenant_context(web_env.tenant("acme")):
        notifications.notify(web_env.tenant("acme"), [client.user.id], title="Winter time")
        Notification.update(created_at=dt.datetime(2026, 12, 3, 20, 5)).execute()
    assert "03 Dec 2026 20:05 UTC" in client.get("/app/notifications/").get_data(as_text=True)
    client.post("/app/profile/preferences", data={"csrf_token": client.csrf, "time_zone": "Europe/Berlin"})
    assert "03 Dec 2026 21:05 CET" in client.get("/app/notifications/").get_data(as_text=True)
