"""Tests for crmcore.realtime: MemoryHub and RedisHub against a real Redis.

Redis tests use the ``redis_url`` fixture (tests/conftest.py: CRM_TEST_REDIS_URL when
set, else a private redis-server for the session) with a unique key prefix per test.
The restart test runs its own throw-away redis-server so the shared one is never
disturbed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from crmcore.realtime import (
    Event,
    Hub,
    MemoryHub,
    RealtimeUnavailable,
    RedisHub,
    Subscription,
    create_hub,
    event_id_key,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENER_PREFIX = "crm-realtime-listener-"


def _listener_threads(prefix: str = "") -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.name.startswith(LISTENER_PREFIX + prefix) and t.is_alive()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def drain(sub: Subscription, count: int, timeout: float = 3.0) -> list[Event]:
    """Collect exactly `count` events (bounded wait), then assert nothing more."""
    deadline = time.monotonic() + timeout
    got: list[Event] = []
    while len(got) < count:
        event = sub.get(timeout=max(0.0, deadline - time.monotonic()))
        if event is None:
            break
        got.append(event)
    assert len(got) == count, f"expected {count} events, got {len(got)}: {got}"
    assert sub.get(timeout=0.1) is None, "unexpected extra event"
    return got


# -- fixtures -----------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_leaked_listeners():
    before = set(_listener_threads())
    yield
    # Runs after every other fixture's teardown (hubs are closed by then).
    leaked = [t for t in _listener_threads() if t not in before]
    assert not leaked, f"listener threads leaked: {leaked}"


@pytest.fixture
def prefix(redis_url: str):
    key_prefix = f"crmtest:rt:{uuid.uuid4().hex}"
    yield key_prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{key_prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def make_redis_hub(redis_url: str, prefix: str):
    hubs: list[RedisHub] = []

    def make(**kwargs) -> RedisHub:
        hub = RedisHub(redis_url, key_prefix=prefix, **kwargs)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


@pytest.fixture(params=["memory", "redis"])
def hub(request) -> Hub:
    if request.param == "memory":
        memory = MemoryHub()
        yield memory
        memory.close()
    else:
        yield request.getfixturevalue("make_redis_hub")()


# -- shared semantics (both hubs) ---------------------------------------------
def test_event_id_key_and_json():
    assert event_id_key("5-1") < event_id_key("5-2") < event_id_key("6-0")
    assert event_id_key("10-0") > event_id_key("9-99")  # numeric, not lexical
    with pytest.raises(ValueError):
        event_id_key("nope")
    event = Event("1-2", 3, "board", {"a": [1, "x"]})
    assert event.to_json() == '{"id":"1-2","topic":"board","data":{"a":[1,"x"]}}'
    assert isinstance(create_hub(None), MemoryHub)
    assert isinstance(create_hub(""), MemoryHub)


def test_publish_subscribe_in_order(hub: Hub):
    sub = hub.subscribe(1, ["board"])
    published = [hub.publish(1, "board", {"n": i}) for i in range(10)]
    got = drain(sub, 10)
    assert [e.id for e in got] == [e.id for e in published]
    assert [e.data for e in got] == [{"n": i} for i in range(10)]
    assert all(e.tenant_id == 1 and e.topic == "board" for e in got)
    keys = [event_id_key(e.id) for e in got]
    assert all(a < b for a, b in zip(keys, keys[1:])), keys


def test_tenant_isolation(hub: Hub):
    sub1 = hub.subscribe(1, ["board"])
    sub2 = hub.subscribe(2, ["board"])
    other = hub.publish(2, "board", {"secret": True})
    assert [e.id for e in drain(sub2, 1)] == [other.id]
    t0 = time.monotonic()
    assert sub1.get(timeout=0.2) is None
    assert time.monotonic() - t0 >= 0.15  # get() really waited for the timeout
    mine = hub.publish(1, "board", {"x": 1})
    assert drain(sub1, 1)[0].id == mine.id
    # Replay is tenant-scoped as well.
    with hub.subscribe(1, ["board"], last_id="0-0") as replay:
        assert [e.id for e in drain(replay, 1)] == [mine.id]


def test_resume_from_last_id(hub: Hub):
    events = [hub.publish(1, "board", {"n": i}) for i in range(1, 6)]
    sub = hub.subscribe(1, ["board"], last_id=events[1].id)
    sixth = hub.publish(1, "board", {"n": 6})
    got = drain(sub, 4)
    assert [e.id for e in got] == [e.id for e in events[2:]] + [sixth.id]
    assert [e.data["n"] for e in got] == [3, 4, 5, 6]


def test_live_only_and_multi_topic_replay_order(hub: Hub):
    a1 = hub.publish(1, "a", {"n": 1})
    b1 = hub.publish(1, "b", {"n": 2})
    a2 = hub.publish(1, "a", {"n": 3})
    live = hub.subscribe(1, ["a", "b"])
    assert live.get(timeout=0.1) is None  # last_id=None: no replay
    replay = hub.subscribe(1, ["a", "b"], last_id="0-0")
    assert [e.id for e in drain(replay, 3)] == [a1.id, b1.id, a2.id]


def test_replay_live_race_no_duplicates_or_gaps(hub: Hub):
    total = 300
    published: list[Event] = []

    def producer() -> None:
        for i in range(total):
            published.append(hub.publish(1, "race", {"n": i}))

    thread = threading.Thread(target=producer)
    thread.start()
    _wait_until(lambda: len(published) >= 20)
    sub = hub.subscribe(1, ["race"], last_id="0-0")  # mid-stream
    thread.join(timeout=10)
    got = drain(sub, total, timeout=5)
    assert [e.id for e in got] == [e.id for e in published]


def test_close_subscription_and_hub(hub: Hub):
    with hub.subscribe(1, ["board"]) as sub:
        pass
    assert sub.closed and not hub._subs  # closed subscriptions are dropped
    hub.publish(1, "board", {})
    assert sub.get(timeout=0.05) is None

    blocked = hub.subscribe(1, ["board"])
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(blocked.get()))
    waiter.start()
    hub.close()  # must wake a consumer blocked without timeout
    waiter.join(timeout=3)
    assert not waiter.is_alive() and results == [None]
    assert list(blocked) == []
    with pytest.raises(RuntimeError):
        hub.subscribe(1, ["board"])


def test_memory_ring_buffer_bounded():
    hub = MemoryHub(maxlen=3)
    events = [hub.publish(1, "t", {"n": i}) for i in range(10)]
    sub = hub.subscribe(1, ["t"], last_id="0-0")
    assert [e.id for e in drain(sub, 3)] == [e.id for e in events[-3:]]
    hub.close()


# -- RedisHub specifics ---------------------------------------------------------
def test_redis_stream_bounded(make_redis_hub, redis_url: str, prefix: str):
    hub = make_redis_hub(stream_maxlen=10)
    for i in range(300):
        hub.publish(1, "t", {"n": i})
    client = redis.Redis.from_url(redis_url)
    try:
        # MAXLEN ~ trims whole radix-tree nodes (100 entries by default).
        assert client.xlen(f"{prefix}:1:t") <= 110
    finally:
        client.close()


def test_two_hubs_share_events(make_redis_hub):
    receiver, sender = make_redis_hub(), make_redis_hub()
    sub = receiver.subscribe(5, ["board"])
    sent = sender.publish(5, "board", {"via": "other hub"})
    got = drain(sub, 1)[0]
    assert (got.id, got.tenant_id, got.data) == (sent.id, 5, {"via": "other hub"})


def test_event_from_other_process(make_redis_hub, redis_url: str, prefix: str):
    sub = make_redis_hub().subscribe(7, ["board"])
    code = (
        "import sys\n"
        "from crmcore.realtime import RedisHub\n"
        "hub = RedisHub(sys.argv[1], key_prefix=sys.argv[2])\n"
        "print(hub.publish(7, 'board', {'from': 'child'}).id)\n"
        "hub.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.run([sys.executable, "-c", code, redis_url, prefix],
                           cwd=REPO_ROOT, env=env, capture_output=True,
                           text=True, timeout=20)
    assert child.returncode == 0, child.stderr
    got = drain(sub, 1)[0]
    assert got.id == child.stdout.strip() and got.data == {"from": "child"}


def test_publish_while_down_raises_quickly():
    port = _free_port()  # nothing listens here
    hub = RedisHub(f"redis://127.0.0.1:{port}/0", key_prefix="crmtest:down")
    try:
        t0 = time.monotonic()
        with pytest.raises(RealtimeUnavailable):
            hub.publish(1, "board", {})
        with pytest.raises(RealtimeUnavailable):
            hub.subscribe(1, ["board"])
        assert time.monotonic() - t0 < 3
        assert issubclass(RealtimeUnavailable, RuntimeError)
    finally:
        hub.close()


def test_publish_to_unresponsive_server_times_out():
    # Accepts TCP connections but never answers: only socket timeouts help.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        hub = RedisHub(f"redis://127.0.0.1:{port}/0", key_prefix="crmtest:mute",
                       socket_timeout=0.3, connect_timeout=0.3)
        try:
            t0 = time.monotonic()
            with pytest.raises(RealtimeUnavailable):
                hub.publish(1, "board", {})
            assert time.monotonic() - t0 < 3
        finally:
            hub.close()


def test_close_stops_listener_thread(make_redis_hub, prefix: str):
    hub = make_redis_hub()
    sub = hub.subscribe(1, ["board"])
    assert len(_listener_threads(prefix)) == 1
    assert hub.connected.wait(3)
    t0 = time.monotonic()
    hub.close()
    assert time.monotonic() - t0 < 2
    assert _listener_threads(prefix) == [] and sub.closed


@pytest.fixture
def own_redis():
    """A private redis-server subprocess that the test may kill and restart."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not found")
    port = _free_port()
    procs: list[subprocess.Popen] = []

    def start() -> None:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        client = redis.Redis(port=port, socket_connect_timeout=0.2)

        def ping() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            assert _wait_until(ping, 5), "private redis-server did not start"
        finally:
            client.close()

    def stop() -> None:
        procs[-1].terminate()
        procs[-1].wait(timeout=5)

    start()
    yield port, start, stop
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_survives_redis_restart(own_redis):
    port, start, stop = own_redis
    url, key_prefix = f"redis://127.0.0.1:{port}/0", f"crmtest:{uuid.uuid4().hex}"
    hub = RedisHub(url, key_prefix=key_prefix)
    fresh = None
    try:
        sub = hub.subscribe(1, ["board"])
        assert hub.connected.wait(3)
        before = hub.publish(1, "board", {"n": 1})
        assert drain(sub, 1)[0].id == before.id

        stop()
        assert _wait_until(lambda: not hub.connected.is_set(), 3)
        with pytest.raises(RealtimeUnavailable):
            hub.publish(1, "board", {"n": "down"})
        start()

        # Published before the listener is back, most likely: back-fill path.
        fresh = RedisHub(url, key_prefix=key_prefix)
        during = fresh.publish(1, "board", {"n": 2})
        got = sub.get(timeout=5)
        assert got is not None and got.id == during.id
        assert event_id_key(during.id) > event_id_key(before.id)

        # Live path once re-subscribed, and the old hub can publish again.
        assert hub.connected.wait(5)
        after = [fresh.publish(1, "board", {"n": 3}), hub.publish(1, "board", {"n": 4})]
        assert [e.id for e in drain(sub, 2)] == [e.id for e in after]
    finally:
        hub.close()
        if fresh is not None:
            fresh.close()
