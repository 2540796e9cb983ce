#!/usr/bin/env python
"""IMAP import benchmark: N inbound messages imported from a real IMAP server (Debian's
dovecot on loopback, as the tests start it) by the email plugin's poll, side by side
with a floor that only fetches and parses them (imap-tools).

* Set-up (untimed): dovecot with one folder holding N messages from N/10 senders
  (every tenth a reply naming an earlier one in In-Reply-To, the rest new threads), a
  temporary instance (SQLite, or ``--database-url``) with tenant ``acme`` on channels +
  email reading that folder, ``fetch_batch`` 5000.
* Import (timed): ``inbound.poll`` for the tenant until the folder is imported (each poll
  imports at most ``fetch_batch`` messages: several polls, as the job would run them):
  per message the threading, the sender's lead or contact (unknown senders become leads),
  the conversation, the message, its timeline entry, the UID mark, one transaction.
* Floor (timed, best of two): imap-tools logs in, fetches the same UIDs in batches of
  ``fetch_batch`` and reads what the import reads of each (From, Subject, Message-ID,
  In-Reply-To, References, To, text, HTML): fetch and parse, no database.
* Checked: every message imported once (Message-ID count = N, no duplicates), a second
  poll imports nothing.

    .venv/bin/python bench/bench_imap.py --messages 1000
    .venv/bin/python bench/bench_imap.py --messages 10000 --report bench/results/imap.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

FOLDER = "Bench"
BATCH = 5000


def message(i: int) -> bytes:
    sender = f"customer{i % max(1, N_SENDERS)}@example.com"
    reply = f"In-Reply-To: <bench-{i - 10}@example.com>\r\nReferences: <bench-{i - 10}@example.com>\r\n" if i % 10 == 9 and i >= 10 else ""
    subject = f"Re: Question {i - 10}" if reply else f"Question {i}"
    body = f"Hello,\r\n\r\nthis is message {i} about our order.\r\n\r\nOn Mon, Acme wrote:\r\n> an earlier line\r\n"
    return (f"From: Customer {i % max(1, N_SENDERS)} <{sender}>\r\nTo: inbox@acme.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <bench-{i}@example.com>\r\n{reply}Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()


N_SENDERS = 100


def fill_mailbox(port: int, n: int) -> None:
    from imap_tools import MailBoxUnencrypted

    from tests.plugins.email.imap_server import PASSWORD, USER

    with MailBoxUnencrypted("127.0.0.1", port).login(USER, PASSWORD) as box:
        box.folder.create(FOLDER)
        for i in range(n):
            box.append(message(i), FOLDER, flag_set=())


def floor(port: int) -> tuple[float, int]:
    from imap_tools import AND, MailBoxUnencrypted

    from tests.plugins.email.imap_server import PASSWORD, USER

    start, count = time.monotonic(), 0
    with MailBoxUnencrypted("127.0.0.1", port).login(USER, PASSWORD, initial_folder=None) as box:
        box.folder.set(FOLDER, readonly=True)
        uids = sorted(int(u) for u in box.uids(AND(all=True)))
        for at in range(0, len(uids), BATCH):
            for msg in box.fetch(AND(uid=[str(u) for u in uids[at:at + BATCH]]), mark_seen=False, bulk=True):
                _ = (msg.from_, msg.subject, msg.headers.get("message-id"), msg.headers.get("in-reply-to"),
                     msg.headers.get("references"), msg.to, msg.text, msg.html)
                count += 1
    return time.monotonic() - start, count


def instance(root: Path, database_url: str, port: int):
    from tests.plugins.email.imap_server import PASSWORD, USER

    config = root / "config"
    (config / "tenants").mkdir(parents=True)
    (config / "crm.toml").write_text(tomli_w.dumps({"database_url": database_url, "secret_key": "bench", "instance_dir": str(root / "instance")}))
    (config / "tenants" / "acme.toml").write_text(tomli_w.dumps({
        "name": "Acme", "hostnames": ["acme.test"], "plugins": ["channels", "email"],
        "settings": {"email": {"from_address": "sales@acme.test", "smtp_host": "127.0.0.1", "smtp_security": "none",
                               "imap_host": "127.0.0.1", "imap_port": port, "imap_security": "none", "imap_user": USER,
                               "imap_password": PASSWORD, "imap_folders": [FOLDER], "fetch_batch": BATCH}},
    }))
    from crmcore.app import create_app
    from crmcore.migrations import migrate

    app = create_app(config, env={})
    with app.app_context():
        migrate(app.extensions["crm"].host, report=lambda m: None)
    return app


def import_all(app, n: int) -> dict:
    from peewee import fn

    from crm_plugins.channels.models import Message
    from crm_plugins.email import inbound
    from crmcore import db

    crm = app.extensions["crm"]
    with app.app_context(), db.database.connection_context():
        tenant = crm.tenant("acme")
        with db.tenant_context(tenant):
            start, polls, imported = time.monotonic(), 0, 0
            while imported < n and polls < n // BATCH + 5:
                imported += inbound.poll(tenant)
                polls += 1
            seconds = time.monotonic() - start
            again = inbound.poll(tenant)
            stored = Message.select().where(Message.direction == "in").count()
            distinct = Message.select(fn.COUNT(Message.message_id.distinct())).where(Message.direction == "in").scalar()
    return {"seconds": seconds, "polls": polls, "imported": imported, "stored": stored, "duplicated": stored - distinct, "second_poll": again}


def run(args: argparse.Namespace) -> dict:
    from tests.plugins.email.imap_server import Dovecot

    root = Path(tempfile.mkdtemp(prefix="bench-imap-"))
    root.chmod(0o755)  # dovecot's own user enters it
    (root / "dovecot").mkdir()
    server = Dovecot(root / "dovecot")
    try:
        t = time.monotonic()
        fill_mailbox(server.port, args.messages)
        fill_seconds = time.monotonic() - t
        app = instance(root, args.database_url or f"sqlite:///{root / 'crm.db'}", server.port)
        ours = import_all(app, args.messages)
        floors = [floor(server.port) for _ in range(2)]
        floor_seconds, floor_count = min(floors)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    n = args.messages
    return {
        "messages": n, "database": "postgresql" if args.database_url.startswith("postgres") else "sqlite",
        "fill_seconds": round(fill_seconds, 1), "import_seconds": round(ours["seconds"], 2), "polls": ours["polls"],
        "import_per_second": round(n / ours["seconds"], 1), "floor_per_second": round(floor_count / floor_seconds, 1),
        "ratio": round((n / ours["seconds"]) / (floor_count / floor_seconds), 2),
        "imported": ours["imported"], "lost": n - ours["stored"], "duplicated": ours["duplicated"], "second_poll_imported": ours["second_poll"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--report", default="")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.report:
        Path(args.report).with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
