#!/usr/bin/env python
"""Webhooks benchmark: events delivered through the task queue's worker to a loopback
receiver, side by side with a floor, and a worker SIGKILLed mid-run.

Set-up: a temporary instance (SQLite by default, ``--database-url`` for PostgreSQL) with
tenant ``acme`` running the webhooks plugin, one endpoint on a receiver in its own
process (``http.server``, HTTP/1.1 keep-alive, answers 204, writes each ``webhook-id``
to a file). ``CRM_WEBHOOKS_ALLOW_PRIVATE=1`` lets the endpoint be on 127.0.0.1.

* ``throughput``: ``--events`` messages are written to the outbox (untimed; what a signal
  receiver writes: a message row and its first attempt's task), then ``crm worker
  --concurrency W`` runs until every message is delivered (timed from the worker's
  start). The floor is the same POSTs (same bodies, same signed headers) from one plain
  ``requests.Session`` loop, no database. Alternating rounds; ratio = worker / floor
  throughput. Lost = messages whose id the receiver never got.
* ``kill``: ``--kill-events`` messages; the worker process is SIGKILLed once about 40%
  are delivered and started again (task lease ``--lease`` seconds, so the attempt it
  held is retried after that); 0 lost expected, duplicates (a POST made twice with the
  same ``webhook-id``: killed between the POST and its log entry) counted.

    .venv/bin/python bench/bench_webhooks.py                                  # defaults, a couple of minutes
    .venv/bin/python bench/bench_webhooks.py --events 10000 --report bench/results/webhooks.md
    .venv/bin/python bench/bench_webhooks.py --events 10000 --database-url postgresql://... --report bench/results/webhooks.md

(``--report`` keeps the other database's section and the file's ``## Notes``.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

RECEIVER = r'''
import http.server, sys
out = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(self.headers.get("webhook-id", "-") + "\n")
        self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
print(s.server_address[1], flush=True)
s.serve_forever()
'''


def start_receiver(log_path: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(log_path)], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/hook"


class Instance:
    def __init__(self, root: Path, database_url: str, lease: float):
        self.config = root / "config"
        (self.config / "tenants").mkdir(parents=True)
        (self.config / "crm.toml").write_text(tomli_w.dumps({
            "database_url": database_url, "secret_key": "bench", "instance_dir": str(root / "instance"),
            "tasks": {"lease_seconds": lease, "poll_seconds": 0.05, "backoff_seconds": 1.0},
        }))
        (self.config / "tenants" / "acme.toml").write_text(tomli_w.dumps({
            "name": "Acme", "hostnames": ["acme.test"], "plugins": ["webhooks"],
            "settings": {"webhooks": {"retry_schedule": [0, 1, 1, 1, 1, 1], "timeout_seconds": 15}},
        }))
        self.env = {**os.environ, "CRM_CONFIG_DIR": str(self.config), "CRM_WEBHOOKS_ALLOW_PRIVATE": "1", "PYTHONPATH": str(ROOT)}
        os.environ["CRM_WEBHOOKS_ALLOW_PRIVATE"] = "1"
        from crmcore.app import create_app
        from crmcore.migrations import migrate

        self.app = create_app(self.config, env={})
        with self.app.app_context():
            migrate(self.app.extensions["crm"].host, report=lambda m: None)

    def context(self):
        import contextlib

        from crmcore import db

        @contextlib.contextmanager
        def ctx():
            crm = self.app.extensions["crm"]
            with self.app.app_context(), db.database.connection_context():
                tenant = crm.tenant("acme")
                with db.tenant_context(tenant):
                    yield tenant
        return ctx()

    def endpoint(self, url: str):
        from crm_plugins.webhooks import service

        with self.context():
            WebhookEndpoint = __import__("crm_plugins.webhooks.models", fromlist=["WebhookEndpoint"]).WebhookEndpoint
            WebhookEndpoint.delete().execute()
            return service.create({"url": url, "event_types": ["lead_created"], "description": "bench"})[0]

    def fill(self, endpoint_id: int, n: int) -> list[int]:
        """n messages in the outbox with their first attempts queued (batches of 500)."""
        from crm_plugins.webhooks import delivery
        from crm_plugins.webhooks.models import WebhookEndpoint

        ids = []
        with self.context():
            endpoint = WebhookEndpoint.get_by_id(endpoint_id)
            for start in range(0, n, 500):
                from crmcore.sdk import atomic

                with atomic():
                    for i in range(start, min(n, start + 500)):
                        data = {"record": {"id": i, "name": f"Lead {i}", "email": f"lead{i}@example.com", "status": "new"}, "actor": None}
                        ids.extend(m.id for m in delivery.create_messages("lead_created", data, [endpoint]))
        return ids

    def delivered(self, ids: list[int]) -> int:
        """How many of ``ids`` are delivered; polled while the worker is timed, so cheap:
        the round's messages are its endpoint's (a list of 10,000 ids in the query cost
        the bench process ~0.1 s of CPU per poll, taken from the worker on 2 cores)."""
        from crm_plugins.webhooks.models import WebhookMessage

        with self.context():
            endpoint_id = WebhookMessage.select(WebhookMessage.endpoint).where(WebhookMessage.id == ids[0]).scalar()
            return WebhookMessage.select().where(WebhookMessage.endpoint == endpoint_id, WebhookMessage.status == "delivered").count()

    def messages(self, ids: list[int]) -> list[tuple[str, str]]:
        from crm_plugins.webhooks.models import WebhookMessage

        with self.context():
            return list(WebhookMessage.select(WebhookMessage.msg_id, WebhookMessage.status).where(WebhookMessage.id.in_(ids)).tuples())

    def signed(self, endpoint_id: int, ids: list[int]) -> list[tuple[str, dict]]:
        """The bodies and signed headers the worker sends (for the floor)."""
        from crm_plugins.webhooks import delivery
        from crm_plugins.webhooks.models import WebhookEndpoint, WebhookMessage
        from crmcore.sdk import utcnow

        with self.context():
            endpoint = WebhookEndpoint.get_by_id(endpoint_id)
            return [(m.body, delivery.signed_headers(endpoint, m, utcnow())) for m in WebhookMessage.select().where(WebhookMessage.id.in_(ids))]

    def worker(self, concurrency: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "crmcore.cli", "worker", "--concurrency", str(concurrency), "--no-scheduler"],
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_all(inst: Instance, ids: list[int], until: int | None = None, timeout: float = 600) -> tuple[float, float, int]:
    """Seconds until ``until`` (default all) are delivered; seconds until the first was, and
    how many were delivered at that poll (so that the worker's start-up can be told apart)."""
    target = len(ids) if until is None else until
    start = time.monotonic()
    first: tuple[float, int] | None = None
    while True:
        done = inst.delivered(ids)
        if first is None and done:
            first = (time.monotonic() - start, done)
        if done >= target:
            break
        if time.monotonic() - start > timeout:
            raise RuntimeError("timed out waiting for deliveries")
        time.sleep(0.1)
    first = first or (0.0, 0)
    return time.monotonic() - start, first[0], first[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def received(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def run(args: argparse.Namespace) -> dict:
    import requests

    root = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    url = args.database_url or f"sqlite:///{root / 'crm.db'}"
    inst = Instance(root, url, args.lease)
    results: dict = {"events": args.events, "concurrency": args.concurrency, "database": "postgresql" if url.startswith("postgres") else "sqlite",
                     "command": " ".join(["bench/bench_webhooks.py", *sys.argv[1:]]), "rounds": []}
    for rnd in range(args.rounds):
        log = root / f"received-{rnd}.log"
        recv, hook = start_receiver(log)
        try:
            endpoint = inst.endpoint(hook)
            ids = inst.fill(endpoint.id, args.events)
            # floor: the same POSTs from one plain session loop
            bodies = inst.signed(endpoint.id, ids)
            session = requests.Session()
            t0 = time.monotonic()
            for body, headers in bodies:
                session.post(hook, data=body.encode(), headers=headers, timeout=15, allow_redirects=False).raise_for_status()
            floor_s = time.monotonic() - t0
            load = os.getloadavg()[0]
            proc = inst.worker(args.concurrency)
            try:
                worker_s, first_s, first_n = wait_all(inst, ids)
            finally:
                stop(proc)
            got = set(received(log))
            lost = sum(1 for msg_id, _ in inst.messages(ids) if msg_id not in got)
        finally:
            recv.kill()
        row = {"floor_per_s": len(ids) / floor_s, "worker_per_s": len(ids) / worker_s, "lost": lost, "load_1min": load,
               # after the worker's start-up (process, imports, app): from its first deliveries on
               "worker_started_per_s": (len(ids) - first_n) / max(1e-9, worker_s - first_s), "startup_s": first_s}
        row["ratio"] = row["worker_per_s"] / row["floor_per_s"]
        row["ratio_started"] = row["worker_started_per_s"] / row["floor_per_s"]
        results["rounds"].append(row)
        print(f"round {rnd + 1}: floor {row['floor_per_s']:.0f}/s, worker {row['worker_per_s']:.0f}/s, ratio {row['ratio']:.2f} "
              f"(after start-up {row['ratio_started']:.2f}), lost {lost}, load {load:.1f}", flush=True)

    # SIGKILL in the middle
    log = root / "received-kill.log"
    recv, hook = start_receiver(log)
    try:
        endpoint = inst.endpoint(hook)
        ids = inst.fill(endpoint.id, args.kill_events)
        proc = inst.worker(args.concurrency)
        wait_all(inst, ids, until=int(len(ids) * 0.4), timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = inst.delivered(ids)
        proc = inst.worker(args.concurrency)
        try:
            wait_all(inst, ids)
        finally:
            stop(proc)
        ids_seen = received(log)
        unique = set(ids_seen)
        msgs = inst.messages(ids)
        lost = sum(1 for msg_id, _ in msgs if msg_id not in unique)
        results["kill"] = {"events": len(ids), "delivered_before_kill": killed_at, "lost": lost, "duplicates": len(ids_seen) - len(unique),
                           "all_duplicates_same_id": True}
        print(f"kill: {len(ids)} events, killed after {killed_at}, lost {lost}, duplicates {len(ids_seen) - len(unique)} (same webhook-id)", flush=True)
    finally:
        recv.kill()
    return results


NOTES = "\n## Notes"


def report(results: dict, path: Path) -> None:
    """Write (or rewrite) the results; a hand-written part from ``## Notes`` on is kept."""
    rounds = results["rounds"]
    lines = [
        f"## Results: {results['database']}",
        "",
        (f"`{results.get('command', 'bench/bench_webhooks.py')}`: {results['events']} events, worker `--concurrency {results['concurrency']}`, "
         f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs shared with other work (load = 1-minute load average at the round's start)."),
        "",
        "Worker: `crm worker` delivering outbox messages, timed from its start (process start-up included);",
        "floor: the same signed POSTs from one plain `requests.Session` loop, no database.",
        "",
        "| Round | Load | Floor (POST/s) | Worker (POST/s) | Ratio | Ratio after start-up | Lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, r in enumerate(rounds, 1):
        lines.append(f"| {i} | {r.get('load_1min', 0):.1f} | {r['floor_per_s']:.0f} | {r['worker_per_s']:.0f} | {r['ratio']:.2f} | {r.get('ratio_started', 0):.2f} | {r['lost']} |")
    k = results["kill"]
    lines += [
        "",
        (f"SIGKILL of the worker after {k['delivered_before_kill']} of {k['events']} deliveries, then a restart: "
         f"**{k['lost']} lost**, **{k['duplicates']} duplicate POSTs** (each with the same `webhook-id` as its first copy, "
         "so receivers that deduplicate by it see each event once)."),
        "",
    ]
    title = "# Webhooks: delivery throughput and a SIGKILLed worker\n\n"
    previous = path.read_text() if path.exists() else ""
    sections = {}
    for part in previous.split("\n## Results: ")[1:]:
        name = part.split("\n", 1)[0].strip()
        sections[name] = "## Results: " + part.split(NOTES, 1)[0].rstrip() + "\n"
    sections[results["database"]] = "\n".join(lines)
    notes = previous[previous.index(NOTES):] if NOTES in previous else ""
    path.write_text(title + "\n".join(sections[name] for name in sorted(sections)) + notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--kill-events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads of `crm worker`")
    parser.add_argument("--lease", type=float, default=3.0, help="task lease seconds (a killed worker's task is retried after it)")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = run(args)
    if args.report:
        report(results, args.report)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
