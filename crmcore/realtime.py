"""Realtime publish/subscribe hub (tenant-scoped topics with replay).

Two implementations share one API:

* :class:`MemoryHub` -- in-process only (tests, single-process dev servers).
  Every ``(tenant_id, topic)`` keeps a bounded ring buffer for replay; ids are
  generated under the hub lock so they are monotonic and publish order equals
  id order.
* :class:`RedisHub` -- works across processes.  Design and why:

  - ``publish`` runs ``XADD {prefix}:{tenant}:{topic} MAXLEN ~ N * data=<json>``
    and then ``PUBLISH {prefix}:live:{db}:{tenant}:{topic} <event json incl. id>``
    (``{db}`` is the Redis database number: channels, unlike keys, are shared by
    all databases of a server).
    The stream id *is* the event id: Redis generates it, so ids increase across
    all processes, and because they are time based they keep increasing across
    a Redis restart (even without persistence) -- clients may keep resuming
    with ``last_id``.  Both commands run in one Lua script so they are atomic:
    two concurrent publishers can never PUBLISH in an order different from
    their XADD ids, which the id-based dedupe below relies on.
  - One background listener thread per hub (started lazily on first
    subscribe) PSUBSCRIBEs ``{prefix}:live:{db}:*`` and fans messages out to local
    subscriptions, so N WebSocket clients cost one Redis connection, not N.
  - Replay for ``last_id`` is ``XRANGE key (last_id +`` (exclusive start).
  - Each subscription keeps a per-topic high-water mark (last delivered id)
    and drops anything not newer, so replay/live races never duplicate; live
    events that arrive while a replay is running are held back and merged
    afterwards, so nothing is dropped either.
  - Redis restarts: the listener catches connection errors, reconnects with
    capped exponential backoff (0.1s doubling to 2s), re-subscribes and then
    back-fills every active subscription from the streams (XRANGE after its
    high-water mark), so events published while it was disconnected are not
    lost.  ``publish`` while Redis is down raises :class:`RealtimeUnavailable`
    quickly (socket timeouts + at most one retry) instead of hanging.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

__all__ = [
    "Event", "Hub", "MemoryHub", "RealtimeUnavailable", "RedisHub",
    "Subscription", "create_hub", "event_id_key",
]

log = logging.getLogger(__name__)

# Errors meaning "Redis is not reachable right now" (as opposed to bugs).
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class RealtimeUnavailable(RuntimeError):
    """Raised when the realtime backend (Redis) cannot be reached."""


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Event:
    """One published event; ``id`` has the Redis stream id format ``<ms>-<seq>``."""

    id: str
    tenant_id: int
    topic: str
    data: dict = field(hash=False)  # dicts are unhashable; id identifies the event

    def to_json(self) -> str:
        """Wire form sent to clients (tenant is implied by the connection)."""
        return _dumps({"id": self.id, "topic": self.topic, "data": self.data})


_EVENT_ID = re.compile(r"([0-9]{1,19})(?:-([0-9]{1,19}))?")
_ID_PART_MAX = 2**63 - 1  # well inside Redis's 64-bit unsigned id parts


def event_id_key(event_id: str) -> tuple[int, int]:
    """Parse ``"<ms>-<seq>"`` into a tuple that compares in id order.

    Strict, because ids come from clients (``last_id``) and are passed on to Redis:
    ASCII digits only (``int()`` alone would also take ``" 1"``, ``"1_0"``, ``"+1"``),
    and each part small enough for a Redis stream id.
    """
    match = _EVENT_ID.fullmatch(str(event_id))
    if match is None:
        raise ValueError(f"invalid event id {event_id!r}")
    ms, seq = int(match[1]), int(match[2] or 0)
    if ms > _ID_PART_MAX or seq > _ID_PART_MAX:
        raise ValueError(f"invalid event id {event_id!r}")
    return ms, seq


def _norm(tenant_id: int, topics: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    if isinstance(topics, str):  # a bare string would iterate per character
        topics = [topics]
    topics = tuple(dict.fromkeys(topics))
    if not topics or not all(isinstance(t, str) and t for t in topics):
        raise ValueError("topics must be non-empty strings")
    return int(tenant_id), topics


class Subscription:
    """A thread-safe queue of events for one tenant and a set of topics."""

    def __init__(self, hub: Hub, tenant_id: int, topics: tuple[str, ...],
                 max_pending: int = 10_000) -> None:
        self.tenant_id = tenant_id
        self.topics = topics
        self.dropped = 0  # events discarded because the consumer fell behind
        self._hub = hub
        self._cond = threading.Condition()
        self._queue: deque[Event] = deque()
        self._max_pending = max_pending
        self._marks: dict[str, str] = {}  # topic -> last enqueued id (dedupe)
        self._replaying = True  # until the initial replay has been merged
        self._held: list[Event] = []  # live events that arrived during replay
        self._needs_backfill = False  # listener reconnected during replay
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or the hub was closed)."""
        return self._closed

    def get(self, timeout: float | None = None) -> Event | None:
        """Next event; None on timeout or when closed. ``None`` waits forever."""
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._closed, timeout)
            if self._closed or not self._queue:
                return None
            return self._queue.popleft()

    def __iter__(self) -> Iterator[Event]:
        """Yield events until the subscription is closed."""
        while (event := self.get()) is not None:
            yield event

    def close(self) -> None:
        """Stop receiving; wakes any blocked :meth:`get` and unregisters."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._held.clear()
            self._cond.notify_all()
        self._hub._unregister(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hub side -----------------------------------------------------------
    def _finish_replay(self, replay: list[Event], start: dict[str, str]) -> bool:
        """Merge replay + held live events; True means "backfill first, retry"."""
        with self._cond:
            if self._closed:
                return False
            if self._needs_backfill:
                # The listener reconnected meanwhile and may have missed live
                # events: stay in replay mode so the caller can re-read streams.
                self._needs_backfill = False
                return True
            self._marks = dict(start)
            self._replaying = False
            for event in sorted(replay, key=lambda e: event_id_key(e.id)):
                self._push(event)
            for event in self._held:  # per-topic arrival order == id order
                self._push(event)
            self._held.clear()
            return False

    def _offer(self, event: Event) -> None:
        with self._cond:
            if self._closed:
                return
            if self._replaying:
                self._held.append(event)
            else:
                self._push(event)

    def _push(self, event: Event) -> None:  # caller holds self._cond
        mark = self._marks.get(event.topic)
        if mark is not None and event_id_key(event.id) <= event_id_key(mark):
            return  # already delivered (replay/live/backfill overlap)
        self._marks[event.topic] = event.id
        if len(self._queue) >= self._max_pending:
            # Bound memory for stuck consumers; they can resume with last_id.
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._cond.notify_all()

    def _backfill_marks(self) -> dict[str, str] | None:
        """High-water marks for a post-reconnect backfill (None: skip)."""
        with self._cond:
            if self._closed:
                return None
            if self._replaying:
                self._needs_backfill = True
                return None
            return dict(self._marks)


class Hub(ABC):
    """Tenant-scoped publish/subscribe with replay from ``last_id``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._subs: dict[tuple[int, str], set[Subscription]] = {}
        self._closed = False

    @abstractmethod
    def publish(self, tenant_id: int, topic: str, data: dict) -> Event:
        """Publish ``data`` on ``topic`` of ``tenant_id``; returns the event."""

    @abstractmethod
    def subscribe(self, tenant_id: int, topics: Iterable[str],
                  last_id: str | None = None) -> Subscription:
        """Subscribe; with ``last_id`` first replay buffered events newer than it."""

    def close(self) -> None:
        """Close every subscription and release resources (idempotent)."""
        with self._lock:
            self._closed = True
        for sub in self._active():
            sub.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("realtime hub is closed")

    def _register(self, sub: Subscription) -> None:
        with self._lock:
            self._check_open()
            for topic in sub.topics:
                self._subs.setdefault((sub.tenant_id, topic), set()).add(sub)

    def _unregister(self, sub: Subscription) -> None:
        with self._lock:
            for topic in sub.topics:
                group = self._subs.get((sub.tenant_id, topic))
                if group is not None:
                    group.discard(sub)
                    if not group:
                        del self._subs[(sub.tenant_id, topic)]

    def _active(self) -> list[Subscription]:
        with self._lock:
            return list({s for group in self._subs.values() for s in group})

    def _fanout(self, event: Event) -> None:
        with self._lock:
            targets = list(self._subs.get((event.tenant_id, event.topic), ()))
        for sub in targets:
            sub._offer(event)


class MemoryHub(Hub):
    """In-process hub with a bounded replay ring buffer per (tenant, topic)."""

    def __init__(self, maxlen: int = 1000) -> None:
        super().__init__()
        self.maxlen = maxlen
        self._rings: dict[tuple[int, str], deque[Event]] = {}
        self._last = (0, -1)

    def _next_id(self) -> str:
        # Same scheme as Redis: wall-clock ms, sequence within a ms, and never
        # going backwards even if the clock does.
        ms, seq = time.time_ns() // 1_000_000, 0
        if ms <= self._last[0]:
            ms, seq = self._last[0], self._last[1] + 1
        self._last = (ms, seq)
        return f"{ms}-{seq}"

    def publish(self, tenant_id: int, topic: str, data: dict) -> Event:
        """Publish; ids are assigned and fanned out under one lock (ordering)."""
        tenant_id, (topic,) = _norm(tenant_id, [topic])
        # JSON round trip: same validation and copy semantics as RedisHub.
        data = json.loads(_dumps(data))
        with self._lock:
            self._check_open()
            event = Event(self._next_id(), tenant_id, topic, data)
            key = (tenant_id, topic)
            self._rings.setdefault(key, deque(maxlen=self.maxlen)).append(event)
            self._fanout(event)  # under the hub lock: live order == id order
        return event

    def subscribe(self, tenant_id: int, topics: Iterable[str],
                  last_id: str | None = None) -> Subscription:
        """Subscribe; replay and registration are atomic under the hub lock."""
        tenant_id, topics = _norm(tenant_id, topics)
        sub = Subscription(self, tenant_id, topics)
        with self._lock:
            replay: list[Event] = []
            start: dict[str, str] = {}
            for topic in topics:
                ring = self._rings.get((tenant_id, topic), ())
                if last_id is None:
                    start[topic] = ring[-1].id if ring else "0-0"
                else:
                    floor = event_id_key(last_id)
                    start[topic] = last_id
                    replay.extend(e for e in ring if event_id_key(e.id) > floor)
            self._register(sub)
            sub._finish_replay(replay, start)
        return sub


# XADD + PUBLISH atomically (see module docstring).  The live message is the
# event JSON with the id spliced in front of the pre-encoded topic/data body.
_PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'data', ARGV[2])
redis.call('PUBLISH', ARGV[4], '{"id":"' .. id .. '",' .. ARGV[3])
return id
"""


class RedisHub(Hub):
    """Cross-process hub on Redis streams (replay) + pub/sub (live)."""

    def __init__(self, url: str, stream_maxlen: int = 1000, key_prefix: str = "crm:rt",
                 *, socket_timeout: float = 2.0, connect_timeout: float = 1.0,
                 poll_interval: float = 0.2) -> None:
        super().__init__()
        self.stream_maxlen = stream_maxlen
        self.key_prefix = key_prefix
        self._socket_timeout = socket_timeout
        self._poll = poll_interval
        opts = dict(decode_responses=True, socket_timeout=socket_timeout,
                    socket_connect_timeout=connect_timeout, socket_keepalive=True)
        # One retry covers a pooled socket that died with a Redis restart; the
        # default (10 retries with backoff) would make publish hang for seconds.
        self._redis = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 1), **opts)
        # Pub/sub channels are server-wide, unlike keys (per database): the database
        # number is part of the channel, so two instances on one Redis server with
        # different databases (redis://.../1 and .../2) never hear each other.
        database = self._redis.connection_pool.connection_kwargs.get("db", 0)
        self._live = f"{key_prefix}:live:{database}:"
        self._pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._live) + "*"
        # The listener owns its reconnect loop, so its client never retries.
        self._listen_client = redis.Redis.from_url(
            url, retry=Retry(NoBackoff(), 0), health_check_interval=15, **opts)
        self._publish_script = self._redis.register_script(_PUBLISH_LUA)
        self._stop = threading.Event()
        self.connected = threading.Event()  # set while the listener is subscribed
        self._thread: threading.Thread | None = None

    def _stream(self, tenant_id: int, topic: str) -> str:
        return f"{self.key_prefix}:{tenant_id}:{topic}"

    def publish(self, tenant_id: int, topic: str, data: dict) -> Event:
        """XADD + PUBLISH; raises :class:`RealtimeUnavailable` if Redis is down."""
        tenant_id, (topic,) = _norm(tenant_id, [topic])
        self._check_open()
        data_json = _dumps(data)
        body = _dumps({"topic": topic, "data": data})[1:]  # drop "{": id goes first
        try:
            event_id = self._publish_script(
                keys=[self._stream(tenant_id, topic)],
                args=[self.stream_maxlen, data_json, body,
                      f"{self._live}{tenant_id}:{topic}"])
        except _UNAVAILABLE as exc:
            raise RealtimeUnavailable(f"realtime publish failed: {exc}") from exc
        return Event(event_id, tenant_id, topic, json.loads(data_json))

    def _read(self, tenant_id: int, topic: str, after: str) -> list[Event]:
        entries = self._redis.xrange(self._stream(tenant_id, topic), f"({after}", "+")
        return [Event(eid, tenant_id, topic, json.loads(fields["data"]))
                for eid, fields in entries]

    def subscribe(self, tenant_id: int, topics: Iterable[str],
                  last_id: str | None = None) -> Subscription:
        """Subscribe; raises :class:`RealtimeUnavailable` if Redis is down."""
        tenant_id, topics = _norm(tenant_id, topics)
        sub = Subscription(self, tenant_id, topics)
        self._register(sub)  # first, so live events are held during replay
        try:
            if last_id is None:  # live only: start after each stream's tip
                pipe = self._redis.pipeline(transaction=False)
                for topic in topics:
                    pipe.xrevrange(self._stream(tenant_id, topic), "+", "-", count=1)
                tips = pipe.execute()
                start = {t: (tip[0][0] if tip else "0-0") for t, tip in zip(topics, tips)}
            else:
                # Validated and normalised ("5" -> "5-0") before it goes to Redis.
                last_id = "%d-%d" % event_id_key(last_id)
                start = {t: last_id for t in topics}
            # Started after the first successful round trip so a failed
            # subscribe leaves no thread behind; the listener back-fills
            # registered subscriptions once connected, so no event is missed.
            self._ensure_listener()
            cursor, replay = dict(start), []
            while True:
                for topic in topics:
                    events = self._read(tenant_id, topic, cursor[topic])
                    if events:
                        replay.extend(events)
                        cursor[topic] = events[-1].id
                if not sub._finish_replay(replay, start):
                    return sub
        except BaseException as exc:
            sub.close()
            if isinstance(exc, _UNAVAILABLE):
                raise RealtimeUnavailable(f"realtime subscribe failed: {exc}") from exc
            raise

    def close(self) -> None:
        """Close subscriptions, stop and join the listener, drop connections."""
        super().close()
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._socket_timeout * 2 + 1)
        self._redis.close()
        self._listen_client.close()

    # -- listener thread --------------------------------------------------
    def _ensure_listener(self) -> None:
        with self._lock:
            self._check_open()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._listen, daemon=True,
                    name=f"crm-realtime-listener-{self.key_prefix}")
                self._thread.start()

    def _listen(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            pubsub = self._listen_client.pubsub()
            try:
                pubsub.psubscribe(self._pattern)
                self._await_confirmation(pubsub)
                self.connected.set()
                delay = 0.1
                # Subscribed first, then back-filled: anything published in
                # between arrives twice at worst, and dedupe drops the copy.
                self._backfill_all()
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=self._poll)
                    if msg is not None and msg["type"] == "pmessage":
                        self._dispatch(msg["channel"], msg["data"])
            except _UNAVAILABLE as exc:
                if not self._stop.is_set():
                    log.warning("realtime listener lost Redis (%s); retry in %.1fs",
                                exc, delay)
            except Exception:  # keep the process's realtime alive on bugs
                log.exception("realtime listener failed; restarting")
            finally:
                self.connected.clear()
                try:
                    pubsub.close()
                except Exception:
                    pass
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, 2.0)

    def _await_confirmation(self, pubsub: Any) -> None:
        # Backfill must start only once the server has registered the pattern.
        deadline = time.monotonic() + self._socket_timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = pubsub.get_message(timeout=left)
            if msg is not None and msg["type"] == "psubscribe":
                return
        raise RedisTimeoutError("no PSUBSCRIBE confirmation")

    def _backfill_all(self) -> None:
        # One XRANGE per (tenant, topic) from the lowest mark of its
        # subscribers, not one per subscription; dedupe drops what they had.
        starts: dict[tuple[int, str], str] = {}
        targets: dict[tuple[int, str], list[Subscription]] = {}
        for sub in self._active():
            for topic, mark in (sub._backfill_marks() or {}).items():
                key = (sub.tenant_id, topic)
                targets.setdefault(key, []).append(sub)
                if key not in starts or event_id_key(mark) < event_id_key(starts[key]):
                    starts[key] = mark
        for key, start in starts.items():
            events = self._read(*key, start)
            for sub in targets[key]:
                for event in events:
                    sub._offer(event)

    def _dispatch(self, channel: str, payload: str) -> None:
        try:
            tenant, _, topic = channel[len(self._live):].partition(":")
            obj = json.loads(payload)
            event = Event(obj["id"], int(tenant), topic, obj["data"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed realtime message on %r", channel)
            return
        self._fanout(event)


def create_hub(redis_url: str | None) -> Hub:
    """A :class:`RedisHub` for a Redis URL, else an in-process :class:`MemoryHub`."""
    return RedisHub(redis_url) if redis_url else MemoryHub()
