"""In-app notifications: the one way the CRM tells a person something.

``notify(tenant, user_ids, title=..., text=..., link=..., kind=...)`` stores one row per
user in ``crm_notification`` (users who muted the kind, inactive users and ids of other
tenants are left out, in the same query), and announces ``notification_created`` after
the commit. The built-in plugin's receiver of that signal publishes the new unread count
on the live topic ``user:<id>:notifications`` (the header's bell listens to it; the
realtime endpoint lets only that user subscribe to a ``user:<id>:...`` topic).

Preferences are per user and per kind: a row in ``crm_notification_mute`` says the user
does not want notifications of that kind. Kinds are short names (``task_reminder``,
``automation``, ``general`` ...) chosen by whoever notifies.

Task reminders are the core's own use: every minute :func:`send_task_reminders` claims
the due, unsent reminders of a tenant with one ``UPDATE ... RETURNING`` (so two
schedulers, or a job run twice, cannot send one twice: the second UPDATE finds the rows
already marked) and notifies each assignee, in the same transaction.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import peewee

from crmcore import db
from crmcore.db import IdField, Tenant, TenantModel, utcnow
from crmcore.entities.errors import Invalid
from crmcore.models import User
from crmcore.signals import send, signal

KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TITLE_MAX = 300
TEXT_MAX = 4000
LINK_MAX = 2000
#: Kinds the core itself sends (the preferences page lists these, plus kinds seen).
CORE_KINDS = {"general": "General", "task_reminder": "Task reminders", "mention": "Mentions in notes"}
REMINDER_KIND = "task_reminder"

#: ``notification_created(tenant, notifications=[{"id", "user_id", "kind", "title", "text", "link"}, ...])``
notification_created = signal("notification_created", "In-app notifications were stored (one item per user).")


class Notification(TenantModel):
    """One message for one user; ``read_at`` is None while unread."""

    id = IdField()
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="+")
    kind = peewee.CharField(max_length=40, default="general")
    title = peewee.CharField(max_length=TITLE_MAX)
    text = peewee.TextField(default="")
    link = peewee.CharField(max_length=LINK_MAX, null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    read_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "crm_notification"
        # the bell's count and the list: a user's rows, newest first, unread ones
        indexes = ((("user", "read_at", "id"), False), (("user", "id"), False))


class NotificationMute(TenantModel):
    """A user does not want notifications of ``kind``."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="+")
    kind = peewee.CharField(max_length=40)

    class Meta:
        table_name = "crm_notification_mute"
        indexes = ((("user", "kind"), True),)


MODELS = [Notification, NotificationMute]


def _check(title: str, text: str, link: str | None, kind: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not isinstance(title, str) or not title.strip():
        errors["title"] = ["A title is required."]
    if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
        errors["kind"] = ["Lower-case letters, digits and _ (at most 40), starting with a letter."]
    if not isinstance(text, str):
        errors["text"] = ["Must be a string."]
    if link is not None and (not isinstance(link, str) or len(link) > LINK_MAX or not (
        (link.startswith("/") and not link.startswith("//")) or link.startswith(("https://", "http://")))):
        errors["link"] = ["A path of this site (/app/...) or an http(s) URL."]
    return errors


def notify(tenant: Tenant, user_ids: Iterable[int], *, title: str, text: str = "", link: str | None = None, kind: str = "general") -> int:
    """Notify users of ``tenant``; returns how many notifications were stored.

    Ids that are not active users of the tenant, and users who muted ``kind``, get none.
    Inside :func:`crmcore.db.atomic` the rows (and the signal) commit with the caller's
    work. Raises :class:`Invalid` for a bad title, kind or link.
    """
    errors = _check(title, text, link, kind)
    if errors:
        raise Invalid(errors)
    ids = sorted({int(i) for i in user_ids if i is not None})
    if not ids:
        return 0
    item = {"kind": kind, "title": title.strip()[:TITLE_MAX], "text": text[:TEXT_MAX], "link": link}
    return store(tenant, [dict(item, user_id=i) for i in ids])


def store(tenant: Tenant, items: list[dict[str, Any]]) -> int:
    """Store notifications ``{"user_id", "kind", "title", "text", "link"}`` (already
    checked) in a constant number of queries, dropping muted and inactive users."""
    if not items:
        return 0
    with db.tenant_context(tenant), db.atomic():
        ids = {it["user_id"] for it in items}
        kinds = {it["kind"] for it in items}
        wanted = {u.id for u in User.select(User.id).where((User.id.in_(ids)) & (User.active == True))}  # noqa: E712
        muted = {(m.user_id, m.kind) for m in NotificationMute.select(NotificationMute.user, NotificationMute.kind)
                 .where(NotificationMute.user.in_(list(wanted) or [0]) & NotificationMute.kind.in_(kinds))}
        now = utcnow()
        rows = [{"tenant": tenant.id, "user": it["user_id"], "kind": it["kind"], "title": it["title"], "text": it["text"], "link": it["link"], "created_at": now} for it in items
                if it["user_id"] in wanted and (it["user_id"], it["kind"]) not in muted]
        if not rows:
            return 0
        created = Notification.insert_many(rows).returning(Notification.id, Notification.user).tuples().execute()
        payload = [{"id": nid, "user_id": uid, "kind": r["kind"], "title": r["title"], "text": r["text"], "link": r["link"]}
                   for (nid, uid), r in zip(created, rows)]
        send(notification_created, tenant, notifications=payload)
    return len(rows)


# --------------------------------------------------------------------------- reading, marking


def mine(user_id: int) -> Any:
    """The user's notifications (current tenant), newest first."""
    return Notification.select().where(Notification.user == user_id)


def unread_counts(user_ids: Iterable[int]) -> dict[int, int]:
    """Unread notifications per user, in one query."""
    ids = list(set(user_ids))
    if not ids:
        return {}
    query = (Notification.select(Notification.user, peewee.fn.COUNT(Notification.id).alias("n"))
             .where(Notification.user.in_(ids) & Notification.read_at.is_null()).group_by(Notification.user))
    counts = {i: 0 for i in ids}
    counts.update({row.user_id: row.n for row in query})
    return counts


def unread_count(user_id: int) -> int:
    return unread_counts([user_id])[user_id]


def mark_read(user_id: int, notification_id: int | None = None) -> int:
    """Mark one notification of the user read (or all of them); returns how many changed.
    A notification of another user is not found (0)."""
    query = Notification.update(read_at=utcnow()).where((Notification.user == user_id) & Notification.read_at.is_null())
    if notification_id is not None:
        query = query.where(Notification.id == notification_id)
    changed = query.execute()
    if changed:
        tenant = db.current_tenant()
        db.on_commit(lambda: _publish_counts(tenant, [user_id]))
    return changed


def muted_kinds(user_id: int) -> set[str]:
    return {m.kind for m in NotificationMute.select(NotificationMute.kind).where(NotificationMute.user == user_id)}


def set_muted(user_id: int, kinds: Iterable[str]) -> set[str]:
    """Replace the user's muted kinds; raises :class:`Invalid` for a malformed kind."""
    kinds = set(kinds)
    bad = sorted(k for k in kinds if not isinstance(k, str) or not KIND_PATTERN.match(k))
    if bad:
        raise Invalid({"muted": [f"Not a notification kind: {', '.join(map(str, bad))}."]})
    with db.atomic():
        NotificationMute.delete().where(NotificationMute.user == user_id).execute()
        if kinds:
            tenant_id = db.require_tenant_id()
            NotificationMute.insert_many([{"tenant": tenant_id, "user": user_id, "kind": k} for k in sorted(kinds)]).execute()
    return kinds


def known_kinds(user_id: int) -> dict[str, str]:
    """Kinds to offer on the preferences form: the core's, those the user received or muted."""
    seen = {n.kind for n in Notification.select(Notification.kind).where(Notification.user == user_id).distinct()}
    kinds = dict(CORE_KINDS)
    for kind in sorted(seen | muted_kinds(user_id)):
        kinds.setdefault(kind, kind.replace("_", " ").capitalize())
    return kinds


# --------------------------------------------------------------------------- live


def topic(user_id: int) -> str:
    return f"user:{user_id}:notifications"


def _publish_counts(tenant: Tenant, user_ids: list[int], latest: dict[int, dict[str, Any]] | None = None) -> None:
    from crmcore import live

    with db.tenant_context(tenant):
        counts = unread_counts(user_ids)
    for user_id, count in counts.items():
        data: dict[str, Any] = {"kind": "notifications", "unread": count}
        if latest and user_id in latest:
            data["latest"] = {k: latest[user_id][k] for k in ("id", "kind", "title", "link")}
        live.publish(tenant, topic(user_id), data)


def on_notification_created(tenant: Tenant, notifications: list[dict[str, Any]] | None = None, **_: Any) -> None:
    """Receiver: the new unread count of each notified user, on their live topic."""
    latest: dict[int, dict[str, Any]] = {}
    for item in notifications or []:
        latest.setdefault(item["user_id"], item)
    if latest:
        _publish_counts(tenant, list(latest), latest)


# --------------------------------------------------------------------------- task reminders


def send_task_reminders(tenant: Tenant) -> int:
    """Scheduled every minute: notify the assignee of each open task whose reminder is
    due and not sent yet. One UPDATE claims them (``reminder_sent_at``) and returns them;
    the notifications are stored in the same transaction, so each reminder fires once."""
    from crmcore.entities.models import Task

    now = utcnow()
    with db.tenant_context(tenant), db.atomic():
        claimed = list(
            Task.update(reminder_sent_at=now)
            .where((Task.tenant == tenant.id) & (Task.reminder_at <= now) & Task.reminder_sent_at.is_null()
                   & (Task.status == "open") & Task.assignee.is_null(False))
            .returning(Task.id, Task.title, Task.assignee, Task.due_at)
            .tuples()
            .execute()
        )
        items = [{"user_id": assignee, "kind": REMINDER_KIND, "title": f"Reminder: {title}"[:TITLE_MAX],
                  "text": f"Due {due:%Y-%m-%d %H:%M} UTC" if due else "", "link": "/app/tasks"}
                 for _id, title, assignee, due in claimed]
        return store(tenant, items)
