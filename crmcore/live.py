"""Live pages: the core's entity signals turned into realtime hub events.

Receivers (registered by the built-in plugin's ``crm_signal_receivers``) run after the
transaction commits and publish to the tenant's hub:

``record:<entity>:<id>`` -- what someone looking at that record needs to know::

    {"kind": "updated" | "deleted", "entity": "lead", "id": 12, "version": 4,
     "changes": ["owner", "status"], "actor": {"id": 3, "name": "Jane Doe"} | null,
     "summary": "Jane Doe changed owner and status"}

    {"kind": "timeline", "entity": "lead", "id": 12, "version": null, "changes": [],
     "actor": ..., "summary": "Note added by Jane Doe: Called back, wants a quote",
     "item": {"type": "note" | "activity" | "task" | "stage_change", "id": 7,
              "at": "2024-05-01T10:00:00Z", "summary": "Called back, wants a quote",
              "action": "created" | "updated" | "deleted"}}

  A timeline event goes to every lead/contact/company/deal an activity, note or task
  links to (before and after a change of its links), and to a deal on a stage change.

``list:<entity>`` -- ``{"kind": "created" | "updated" | "deleted", "id": 12,
"actor_id": 3 | null}`` for list pages ("new or changed records").

Values never travel, only field names; with ``[settings.core] agents_see_own_only`` the
text of notes, activities and tasks is left out too (every signed-in user of the tenant
may subscribe to any topic unless a plugin's rule claims it). Publishing never raises
into the request: when the hub fails (Redis down) the event is held, in order, and
published once the hub is back; meanwhile further events join it without waiting for
Redis, so a bulk change does not wait for one timeout per record (see ``_Held``).
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
import weakref
from typing import Any

import flask

log = logging.getLogger("crmcore.live")

TIMELINE_TYPES = ("activity", "note", "task")
LINKS = ("lead", "contact", "company", "deal")
SUMMARY_CHARS = 140
MAX_HELD = 10_000  # events kept while the hub is down (see _Held)
RETRY_FIRST, RETRY_MAX = 0.2, 2.0  # seconds between tries to hand held events over
_ID_PART_MAX = 2**63 - 1

_lock = threading.Lock()
_held: "weakref.WeakKeyDictionary[Any, _Held]" = weakref.WeakKeyDictionary()  # hub -> what waits for it


# --------------------------------------------------------------------------- templates


def since_id() -> str:
    """The event id just before now, rendered into a page (``data-since``): its first
    connection resumes from there, so a change made while the page loads is not missed."""
    return f"{time.time_ns() // 1_000_000 - 1}-{_ID_PART_MAX}"


def init_app(app: flask.Flask) -> None:
    """Make :func:`since_id` available to templates as ``live_since()``."""
    app.jinja_env.globals.setdefault("live_since", since_id)


# --------------------------------------------------------------------------- publishing


def _hub() -> Any:
    if not flask.has_app_context():
        return None
    crm = flask.current_app.extensions.get("crm")
    return getattr(crm, "hub", None)


def publish(tenant: Any, topic: str, data: dict[str, Any]) -> bool:
    """Publish on the tenant's hub; False when the hub could not take it now. Then the
    event is held, in order with the others, and handed over once the hub is back
    (delivered late, not lost: see :class:`_Held`)."""
    hub = _hub()
    if hub is None or tenant is None:
        return False
    with _lock:
        held = _held.get(hub)
        if held is not None:  # keep the order: behind what is already waiting
            held.add(tenant.id, topic, data)
            return False
    try:
        hub.publish(tenant.id, topic, data)
        return True
    except Exception as exc:  # RealtimeUnavailable, a closed hub at shutdown, anything
        if isinstance(exc, RuntimeError) and "closed" in str(exc):
            return False  # shutting down: nobody is listening any more
        with _lock:
            held = _held.get(hub)
            if held is None:
                held = _held[hub] = _Held(hub)
                log.warning("live update %r for tenant %s not published (%s); holding live updates until the realtime hub is back", topic, getattr(tenant, "slug", tenant), exc)
            held.add(tenant.id, topic, data)
        return False


class _Held:
    """Events a hub could not take (Redis down), in publish order, and the thread that
    hands them over once it is back: subscribers get them late, with their ids in
    order. While events wait, publishing adds to them without trying the hub, so
    requests never wait for Redis. Past ``MAX_HELD`` the oldest are dropped, and each
    topic that lost one gets a ``{"kind": "resync"}`` event once the rest are through:
    pages then reload what they show (crmcore/static/live.js). Events held by a process
    that dies are lost; its pages' sockets close and resume, which covers the rest."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.events: collections.deque[tuple[int, str, dict[str, Any]]] = collections.deque()
        self.lost: set[tuple[int, str]] = set()
        self.thread = threading.Thread(target=self._hand_over, name="crm-live-held", daemon=True)
        self.thread.start()

    def add(self, tenant_id: int, topic: str, data: dict[str, Any]) -> None:  # under _lock
        if len(self.events) >= MAX_HELD:
            dropped = self.events.popleft()
            self.lost.add((dropped[0], dropped[1]))
        self.events.append((tenant_id, topic, data))

    def _hand_over(self) -> None:
        delay = RETRY_FIRST
        handed = 0
        while True:
            with _lock:
                if not self.events and self.lost:
                    self.events.extend((tenant_id, topic, {"kind": "resync"}) for tenant_id, topic in sorted(self.lost))
                    self.lost.clear()
                if not self.events:
                    _held.pop(self.hub, None)
                    log.warning("live updates resumed; %d held event(s) were published late", handed)
                    return
                event = self.events[0]
            try:
                self.hub.publish(*event)
            except Exception as exc:
                if isinstance(exc, RuntimeError) and "closed" in str(exc):
                    with _lock:
                        _held.pop(self.hub, None)
                    return
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            with _lock:
                self.events.popleft()
            handed += 1
            delay = RETRY_FIRST


# --------------------------------------------------------------------------- payload pieces


def _actor(actor: Any) -> dict[str, Any] | None:
    """``{"id", "name"}`` of the user behind a change (a token's user; id None for a
    token without one); None for jobs and commands."""
    from crmcore.models import ApiToken, User

    if isinstance(actor, User):
        return {"id": actor.id, "name": actor.name or actor.email}
    if isinstance(actor, ApiToken):
        user = User.get_or_none(User.id == actor.user_id) if actor.user_id else None
        if user is not None:
            return {"id": user.id, "name": user.name or user.email}
        return {"id": None, "name": f"API client {actor.name}".strip() if actor.name else "an API client"}
    return None


def _clip(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="seconds") + "Z"  # stored naive UTC
    return None


def _words(names: list[str]) -> str:
    names = [n.replace("_", " ") for n in names]
    if len(names) > 4:
        names = names[:3] + [f"{len(names) - 3} more fields"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _private(tenant: Any) -> bool:
    """True when not everyone in the tenant may read every record (texts stay out)."""
    try:
        return bool(flask.current_app.extensions["crm"].settings(tenant, "core").get("agents_see_own_only"))
    except Exception:
        return True


def _by(text: str, actor: dict[str, Any] | None) -> str:
    return f"{text} by {actor['name']}" if actor else text


# --------------------------------------------------------------------------- timeline items


def _item(entity: str, record: Any, action: str, changes: dict[str, Any] | None, private: bool) -> tuple[dict[str, Any], str]:
    """(item, headline) of an activity, note or task."""
    if entity == "activity":
        label = (record.kind or "activity").capitalize()
        if record.direction in ("in", "out"):
            label += " (inbound)" if record.direction == "in" else " (outbound)"
        text = record.subject or record.content or ""
        at = record.occurred_at
        verb = {"created": "logged", "updated": "edited", "deleted": "deleted"}[action]
    elif entity == "note":
        label, text, at = "Note", record.body, record.created_at
        verb = {"created": "added", "updated": "edited", "deleted": "deleted"}[action]
    else:
        label, text, at = "Task", record.title, record.created_at
        verb = {"created": "created", "updated": "updated", "deleted": "deleted"}[action]
        if action == "updated" and "status" in (changes or {}):
            verb = {"done": "completed", "cancelled": "cancelled", "open": "reopened"}.get(record.status, verb)
    text = "" if private else _clip(text)
    return {"type": entity, "id": record.id, "at": _iso(at), "summary": text, "action": action}, f"{label} {verb}"


def _linked(record: Any, changes: dict[str, Any] | None) -> list[tuple[str, int]]:
    """The (entity, id) pairs ``record`` links to, plus the ones a change took it from."""
    out: dict[tuple[str, int], None] = {}
    for link in LINKS:
        current = getattr(record, f"{link}_id", None)
        before = (changes or {}).get(link)
        for value in (current, before[0] if isinstance(before, (list, tuple)) and before else None):
            if isinstance(value, int) and not isinstance(value, bool):
                out[(link, value)] = None
    return list(out)


def _publish_timeline(tenant: Any, entity: str, record: Any, action: str, actor: Any, changes: dict[str, Any] | None = None) -> None:
    who = _actor(actor)
    item, headline = _item(entity, record, action, changes, _private(tenant))
    summary = _by(headline, who) + (f": {item['summary']}" if item["summary"] and action != "deleted" else "")
    for link, link_id in _linked(record, changes):
        publish(tenant, f"record:{link}:{link_id}", {"kind": "timeline", "entity": link, "id": link_id, "version": None, "changes": [], "actor": who, "summary": summary, "item": item})


# --------------------------------------------------------------------------- receivers


def on_entity_created(tenant: Any, entity: str, record: Any, actor: Any = None, **_: Any) -> None:
    who = _actor(actor)
    publish(tenant, f"list:{entity}", {"kind": "created", "id": record.id, "actor_id": who and who["id"]})
    if entity in TIMELINE_TYPES:
        _publish_timeline(tenant, entity, record, "created", actor)


def on_entity_updated(tenant: Any, entity: str, record: Any, changes: dict[str, Any] | None = None, actor: Any = None, **_: Any) -> None:
    who = _actor(actor)
    fields = sorted(changes or {})
    if fields:
        summary = f"{who['name']} changed {_words(fields)}" if who else f"Changed: {_words(fields)}"
    else:
        summary = _by("Changed", who)
    publish(tenant, f"record:{entity}:{record.id}", {"kind": "updated", "entity": entity, "id": record.id, "version": getattr(record, "version", None), "changes": fields, "actor": who, "summary": summary})
    publish(tenant, f"list:{entity}", {"kind": "updated", "id": record.id, "actor_id": who and who["id"]})
    if entity in TIMELINE_TYPES:
        _publish_timeline(tenant, entity, record, "updated", actor, changes)


def on_entity_deleted(tenant: Any, entity: str, record_id: int, record: Any = None, actor: Any = None, **_: Any) -> None:
    who = _actor(actor)
    summary = f"{who['name']} deleted this {entity.replace('_', ' ')}" if who else f"This {entity.replace('_', ' ')} was deleted"
    publish(tenant, f"record:{entity}:{record_id}", {"kind": "deleted", "entity": entity, "id": record_id, "version": getattr(record, "version", None), "changes": [], "actor": who, "summary": summary})
    publish(tenant, f"list:{entity}", {"kind": "deleted", "id": record_id, "actor_id": who and who["id"]})
    if entity in TIMELINE_TYPES and record is not None:
        _publish_timeline(tenant, entity, record, "deleted", actor)


def on_deal_stage_changed(tenant: Any, deal: Any, from_stage_id: int | None = None, to_stage_id: int | None = None, actor: Any = None, **_: Any) -> None:
    """A timeline item on the deal's topic (its ``updated`` event comes from entity_updated)."""
    from crmcore.entities.models import DealStageChange, Stage

    names = {s.id: s.name for s in Stage.select(Stage.id, Stage.name).where(Stage.id.in_([i for i in (from_stage_id, to_stage_id) if i is not None]))}
    change = DealStageChange.select().where(DealStageChange.deal == deal.id).order_by(DealStageChange.changed_at.desc(), DealStageChange.id.desc()).first()
    who = _actor(actor)
    text = f"Moved from {names.get(from_stage_id, '(none)')} to {names.get(to_stage_id, '(deleted stage)')}"
    item = {"type": "stage_change", "id": change.id if change else None, "at": _iso(change.changed_at) if change else None, "summary": text, "action": "created"}
    summary = f"{text} by {who['name']}" if who else text
    publish(tenant, f"record:deal:{deal.id}", {"kind": "timeline", "entity": "deal", "id": deal.id, "version": deal.version, "changes": [], "actor": who, "summary": summary, "item": item})


def signal_receivers() -> list[Any]:
    """The receivers, for the built-in plugin's ``crm_signal_receivers``."""
    from crmcore.contrib import SignalReceiver

    return [
        SignalReceiver("entity_created", on_entity_created),
        SignalReceiver("entity_updated", on_entity_updated),
        SignalReceiver("entity_deleted", on_entity_deleted),
        SignalReceiver("deal_stage_changed", on_deal_stage_changed),
    ]
