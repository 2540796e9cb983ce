#!/usr/bin/env python
"""Email benchmark: N templated emails through the outbox and the worker to an SMTP
server on loopback (aiosmtpd in its own process), side by side with a floor.

* Set-up (untimed): a temporary instance (SQLite, or ``--database-url``) with tenant
  ``acme`` on channels + email, N leads and one template; N messages queued through the
  channels plugin's compose (rendered for each lead, Message-ID fixed, task queued).
* Worker (timed): ``crm worker --concurrency W`` from its start until every message is
  ``sent``.
* Floor (timed, best of two): the same rendered messages (the MIME the worker builds)
  sent by plain smtplib in one loop, one connection per message, and (reported too,
  what the worker does) over one reused connection.
* The receiver writes each Message-ID it accepted: lost = queued ids never received,
  duplicated = ids received more than once.

    .venv/bin/python bench/bench_email.py --emails 1000
    .venv/bin/python bench/bench_email.py --emails 10000 --report bench/results/email.md
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import smtplib
import socket
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
import re, sys, time
from aiosmtpd.controller import Controller
out = open(sys.argv[1], "a", buffering=1)
MID = re.compile(rb"^Message-ID:\s*(\S+)", re.M | re.I)
class H:
    async def handle_DATA(self, server, session, envelope):
        m = MID.search(envelope.content)
        out.write((m.group(1).decode() if m else "-") + "\n")
        return "250 OK"
c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[2]))
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    def __init__(self, root: Path, database_url: str, smtp_port: int):
        self.config = root / "config"
        (self.config / "tenants").mkdir(parents=True)
        (self.config / "crm.toml").write_text(tomli_w.dumps({
            "database_url": database_url, "secret_key": "bench", "instance_dir": str(root / "instance"),
            "tasks": {"lease_seconds": 60, "poll_seconds": 0.05, "backoff_seconds": 1.0},
        }))
        (self.config / "tenants" / "acme.toml").write_text(tomli_w.dumps({
            "name": "Acme", "hostnames": ["acme.test"], "plugins": ["channels", "email"],
            "settings": {"email": {"from_address": "sales@acme.test", "from_name": "Acme Sales", "smtp_host": "127.0.0.1",
                                   "smtp_port": smtp_port, "smtp_security": "none"}},
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
        from crm_plugins.channels.models import MessageTemplate
        from crmcore.sdk import Lead, atomic

        ids = []
        with self.context() as tenant:
            template = MessageTemplate.create(name="bench", subject="An offer for {{ lead.name }}",
                                              body="Hello {{ contact.first_name }},\n\nour offer for {{ company.name }} is attached.\n\nRegards")
            for start in range(0, n, 500):
                with atomic():
                    Lead.insert_many([{"name": f"Lead {i}", "email": f"lead{i}@example.com", "tenant": tenant.id} for i in range(start, min(n, start + 500))]).execute()
            leads = list(Lead.select().order_by(Lead.id))
            for start in range(0, n, 500):
                with atomic():
                    for lead in leads[start:start + 500]:
                        message = channels.compose(tenant, channel_name="email", entity="lead", record=lead, conversation=None, to=None, cc=None,
                                                   subject=None, body=None, html=None, template=template, user=None)
                        ids.append(message.id)
        return ids

    def sent(self) -> int:
        from crm_plugins.channels.models import Message

        with self.context():
            return Message.select().where(Message.status == "sent").count()

    def rendered(self) -> list[tuple[str, list[str], bytes]]:
        from crm_plugins.channels.models import Message
        from crm_plugins.email import smtp

        with self.context():
            return [(m.message_id, m.recipients, smtp.build(m).as_bytes()) for m in Message.select().order_by(Message.id)]

    def message_ids(self) -> list[str]:
        from crm_plugins.channels.models import Message

        with self.context():
            return [m for (m,) in Message.select(Message.message_id).tuples()]


def received(log: Path) -> collections.Counter:
    return collections.Counter(log.read_text().split()) if log.exists() else collections.Counter()


def start_receiver(log: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(log), str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def floor(messages: list[tuple[str, list[str], bytes]], port: int, reuse: bool) -> float:
    start = time.monotonic()
    client = smtplib.SMTP("127.0.0.1", port) if reuse else None
    for _, rcpts, raw in messages:
        if reuse:
            client.sendmail("sales@acme.test", rcpts, raw)
        else:
            with smtplib.SMTP("127.0.0.1", port) as c:
                c.sendmail("sales@acme.test", rcpts, raw)
    if client:
        client.quit()
    return time.monotonic() - start


def run(args: argparse.Namespace) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-email-"))
    url = args.database_url or f"sqlite:///{root / 'crm.db'}"
    port = free_port()
    log = root / "received.txt"
    receiver = start_receiver(log, port)
    try:
        inst = Instance(root, url, port)
        t = time.monotonic()
        ids = inst.fill(args.emails)
        queue_seconds = time.monotonic() - t
        start = time.monotonic()
        worker = subprocess.Popen([sys.executable, "-m", "crmcore.cli", "worker", "--concurrency", str(args.concurrency), "--no-scheduler"],
                                  env=inst.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first: tuple[float, int] | None = None
        try:
            while (done := inst.sent()) < len(ids):
                if first is None and done:
                    first = (time.monotonic() - start, done)
                if time.monotonic() - start > args.timeout:
                    raise RuntimeError(f"timed out: {done} of {len(ids)} sent")
                time.sleep(0.2)
            worker_seconds = time.monotonic() - start
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        got = received(log)
        queued = inst.message_ids()
        lost = sum(1 for m in queued if got[m] == 0)
        duplicated = sum(1 for m in queued if got[m] > 1)
        messages = inst.rendered()
        # twice each, the best: the machine's load changes from minute to minute
        floor_seconds = min(floor(messages, port, reuse=False) for _ in range(2))
        floor_reuse_seconds = min(floor(messages, port, reuse=True) for _ in range(2))
    finally:
        receiver.kill()
        receiver.wait()
    n = len(ids)
    return {
        "emails": n, "database": "postgresql" if url.startswith("postgres") else "sqlite", "concurrency": args.concurrency,
        "queue_seconds": round(queue_seconds, 2), "worker_seconds": round(worker_seconds, 2),
        "worker_per_second": round(n / worker_seconds, 1), "floor_per_second": round(n / floor_seconds, 1),
        # from the first message sent (the worker's start-up apart)
        "worker_started_after_seconds": round(first[0], 2) if first else None,
        "worker_per_second_after_start": round((n - first[1]) / (worker_seconds - first[0]), 1) if first and worker_seconds > first[0] else None,
        "floor_reused_connection_per_second": round(n / floor_reuse_seconds, 1),
        "ratio": round((n / worker_seconds) / (n / floor_seconds), 2),
        "ratio_vs_reused_connection": round((n / worker_seconds) / (n / floor_reuse_seconds), 2),
        "lost": lost, "duplicated": duplicated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=1000)
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
