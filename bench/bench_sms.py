#!/usr/bin/env python
"""SMS benchmark: N texts through the outbox and the worker to a loopback server that
imitates the provider's Messages API (its own process), side by side with a floor.

* Set-up (untimed): a temporary instance (SQLite, or ``--database-url``) with tenant
  ``acme`` on channels + sms, N leads with distinct numbers; N texts queued through the
  channels plugin's compose (number normalised, consent checked, task queued).
* Worker (timed): ``crm worker --concurrency W`` from its start until every text is
  ``sent``.
* Floor (timed, best of two): the same POSTs (form, basic auth) from one plain urllib
  loop, as the adapter makes them (one connection each).
* The receiver writes each accepted Body (unique per lead): lost = texts never received,
  duplicated = received more than once.

    .venv/bin/python bench/bench_sms.py --texts 1000
    .venv/bin/python bench/bench_sms.py --texts 10000 --report bench/results/sms.md
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import tomli_w

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
SID = "ACbench0000000000000000000000000000"
TOKEN = "bench-token"

RECEIVER = r'''
import json, sys, threading, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[1], "a", buffering=1)
lock = threading.Lock()
count = [0]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *a): pass
    def do_POST(self):
        form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
        with lock:
            count[0] += 1
            sid = "SM%032x" % count[0]
            out.write(form["Body"].replace("\n", " ") + "\n")
        data = json.dumps({"sid": sid, "status": "queued"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
ThreadingHTTPServer.request_queue_size = 256
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H)
print("ready", flush=True)
s.serve_forever()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    def __init__(self, root: Path, database_url: str, port: int):
        self.config = root / "config"
        (self.config / "tenants").mkdir(parents=True)
        (self.config / "crm.toml").write_text(tomli_w.dumps({
            "database_url": database_url, "secret_key": "bench", "instance_dir": str(root / "instance"),
            "tasks": {"lease_seconds": 60, "poll_seconds": 0.05, "backoff_seconds": 1.0},
        }))
        (self.config / "tenants" / "acme.toml").write_text(tomli_w.dumps({
            "name": "Acme", "hostnames": ["acme.test"], "plugins": ["channels", "sms"],
            "settings": {"sms": {"base_url": f"http://127.0.0.1:{port}", "account_sid": SID, "auth_token": TOKEN,
                                 "from_number": "+14155550100", "default_region": "US"}},
        }))
        self.env = {**os.environ, "CRM_CONFIG_DIR": str(self.config), "PYTHONPATH": str(ROOT)}
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

    def fill(self, n: int) -> list[int]:
        import crm_plugins.channels.contrib as channels
        from crmcore.sdk import Lead, atomic

        ids = []
        with self.context() as tenant:
            for start in range(0, n, 500):
                with atomic():
                    Lead.insert_many([{"name": f"Lead {i}", "phone": f"(415) {200 + i // 10000:03d}-{i % 10000:04d}", "tenant": tenant.id}
                                      for i in range(start, min(n, start + 500))]).execute()
            leads = list(Lead.select().order_by(Lead.id))
            for start in range(0, n, 500):
                with atomic():
                    for lead in leads[start:start + 500]:
                        message = channels.compose(tenant, channel_name="sms", entity="lead", record=lead, conversation=None, to=None, cc=None,
                                                   subject=None, body=f"Hello {lead.name}, your order is ready.", html=None, template=None, user=None)
                        ids.append(message.id)
        return ids

    def sent(self) -> int:
        from crm_plugins.channels.models import Message

        with self.context():
            return Message.select().where(Message.status == "sent").count()

    def forms(self) -> list[dict[str, str]]:
        from crm_plugins.channels.models import Message

        with self.context():
            return [{"To": m.recipients[0], "From": m.sender, "Body": m.body_text} for m in Message.select().order_by(Message.id)]


def floor(forms: list[dict[str, str]], port: int) -> float:
    url = f"http://127.0.0.1:{port}/2010-04-01/Accounts/{SID}/Messages.json"
    auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    start = time.monotonic()
    for form in forms:
        request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
        request.add_header("Authorization", auth)
        with urllib.request.urlopen(request, timeout=15) as answer:
            json.loads(answer.read())
    return time.monotonic() - start


def run(args: argparse.Namespace) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-sms-"))
    url = args.database_url or f"sqlite:///{root / 'crm.db'}"
    port = free_port()
    log = root / "received.txt"
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(log), str(port)], stdout=subprocess.PIPE, text=True)
    assert receiver.stdout.readline().strip() == "ready"
    try:
        inst = Instance(root, url, port)
        t = time.monotonic()
        ids = inst.fill(args.texts)
        queue_seconds = time.monotonic() - t
        start = time.monotonic()
        worker = subprocess.Popen([sys.executable, "-m", "crmcore.cli", "worker", "--concurrency", str(args.concurrency), "--no-scheduler"],
                                  env=inst.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while (done := inst.sent()) < len(ids):
                if time.monotonic() - start > args.timeout:
                    raise RuntimeError(f"timed out: {done} of {len(ids)} sent")
                time.sleep(0.2)
            worker_seconds = time.monotonic() - start
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        forms = inst.forms()
        got = collections.Counter(log.read_text().splitlines())
        lost = sum(1 for f in forms if got[f["Body"]] == 0)
        duplicated = sum(1 for f in forms if got[f["Body"]] > 1)
        floor_seconds = min(floor(forms, port) for _ in range(2))
    finally:
        receiver.kill()
        receiver.wait()
    n = len(ids)
    return {
        "texts": n, "database": "postgresql" if url.startswith("postgres") else "sqlite", "concurrency": args.concurrency,
        "queue_seconds": round(queue_seconds, 2), "worker_seconds": round(worker_seconds, 2),
        "worker_per_second": round(n / worker_seconds, 1), "floor_per_second": round(n / floor_seconds, 1),
        "ratio": round(floor_seconds / worker_seconds, 2), "lost": lost, "duplicated": duplicated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--report", default="")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.report:
        Path(args.report).with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
