"""A Redis outage under steady writes: how many live events reach a listening page.

A private redis-server; two CRM apps on one database and that Redis (two "processes'"
hubs: one writes through the API, the other's WebSocket-side subscription listens, as a
record page's socket does); steady lead updates (one `record:lead:<id>` event each) for
the whole run; Redis is killed for `--outage` seconds in the middle, then restarted
(empty, as a Redis without persistence comes back). The listener resumes from the last
id it saw, as live.js does after a drop.

Figures: events published (one per committed update), received, lost (never received),
duplicated, and the longest delay of an event held during the outage.

    python bench/bench_redis_outage.py [--seconds 15] [--outage 5] [--rate 40]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis
import tomli_w

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--outage", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=40.0, help="updates per second")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crm-outage-"))
    port = free_port()
    binary = shutil.which("redis-server")
    redis_cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)]
    redis_proc = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    config = work / "config"
    (config / "tenants").mkdir(parents=True)
    (config / "crm.toml").write_text(tomli_w.dumps({"database_url": f"sqlite:///{work / 'crm.db'}", "secret_key": "bench", "redis_url": f"redis://127.0.0.1:{port}/0", "api_rate_per_minute": 0}))
    (config / "tenants" / "acme.toml").write_text(tomli_w.dumps({"name": "Acme", "hostnames": ["acme.test"], "plugins": []}))

    from crmcore import auth, db
    from crmcore.app import create_app
    from crmcore.migrations import migrate
    from crmcore.realtime import event_id_key

    writer_app = create_app(config)
    with writer_app.app_context():
        migrate(writer_app.extensions["crm"].host, report=lambda m: None)
        with db.database.connection_context():
            tenant = writer_app.extensions["crm"].tenant("acme")
            token = auth.create_token(tenant, "admin", name="bench")[1]
    listener_app = create_app(config)  # the other process's hub
    api = writer_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    lead_id = api.post("/api/v1/leads", json={"name": "Outage"}, headers=headers, base_url="http://acme.test").json["id"]
    topic = f"record:lead:{lead_id}"
    hub = listener_app.extensions["crm"].hub
    received: list[tuple[str, int, float]] = []  # (event id, version, when)
    stop = threading.Event()

    def listen() -> None:
        last = None
        while not stop.is_set():
            try:
                with hub.subscribe(tenant.id, [topic], last_id=last) as sub:
                    while not stop.is_set():
                        event = sub.get(timeout=0.2)
                        if event is not None:
                            received.append((event.id, event.data.get("version"), time.monotonic()))
                            last = event.id
                        if sub.closed:
                            break
            except Exception:
                time.sleep(0.2)  # the page's socket closed: reconnect and resume from `last`

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(0.5)
    committed: dict[int, float] = {}
    started = time.monotonic()
    outage_at, back_at = args.seconds / 2 - args.outage / 2, args.seconds / 2 + args.outage / 2
    killed = restarted = False
    n = 0
    while (elapsed := time.monotonic() - started) < args.seconds:
        if not killed and elapsed >= outage_at:
            redis_proc.kill()
            redis_proc.wait()
            killed = True
        if killed and not restarted and elapsed >= back_at:
            redis_proc = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            restarted = True
        n += 1
        answer = api.patch(f"/api/v1/leads/{lead_id}", json={"need": f"update {n}"}, headers=headers, base_url="http://acme.test")
        if answer.status_code == 200:
            committed[answer.json["version"]] = time.monotonic()
        time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and {v for _, v, _ in received} < set(committed):
        time.sleep(0.1)
    stop.set()
    thread.join(timeout=5)
    versions = [v for _, v, _ in received]
    lost = set(committed) - set(versions)
    duplicated = len(versions) - len(set(versions))
    ids = [i for i, _, _ in received]
    in_order = ids == sorted(ids, key=event_id_key)
    held_delay = max((when - committed[v] for _, v, when in received if v in committed), default=0.0)
    print(f"\n## Redis outage of {args.outage:g} s in a {args.seconds:g} s run, {args.rate:g} updates/s\n")
    print(f"events published (committed updates): {len(committed)}; received: {len(set(versions))}; lost: {len(lost)}; duplicated: {duplicated}; in id order: {in_order}")
    print(f"longest delay of an event (held through the outage): {held_delay:.1f} s")
    writer_app.extensions["crm"].shutdown()
    listener_app.extensions["crm"].shutdown()
    redis_proc.kill()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
