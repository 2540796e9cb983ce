#!/usr/bin/env python
"""Inbox benchmark: one page (50 rows) of the inbox of every channel over N website-chat
conversations (the chat's own table) and N shared ones (email), side by side with a floor.

* Set-up (untimed): a temporary instance (SQLite, or ``--database-url``) with tenant
  ``acme`` on channels + email + chat, N rows in ``chat_conversation`` and N in
  ``channels_conversation`` (bulk inserts), last messages spread over a year.
* Inbox (timed): ``plugins/channels/inbox.page`` -- the UNION ALL of both sources with
  the visibility, status and queue filters, ordered and paged in SQL -- for the first
  page, a page deep in the list (a keyset cursor) and the ``status=open`` filter.
* Floor (timed): what a hand-written inbox without the union would do at the least: the
  two single-table queries (``ORDER BY last_message_at DESC, id DESC LIMIT 51`` each,
  no visibility filter) merged in Python.
Best of ``--repeat`` runs each, interleaved.

    .venv/bin/python bench/bench_inbox.py --conversations 1000
    .venv/bin/python bench/bench_inbox.py --conversations 10000 --report bench/results/inbox.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def seed(n: int) -> None:
    from crm_plugins.channels.models import Conversation
    from crm_plugins.chat.models import ChatConversation
    from crmcore.sdk import atomic, require_tenant_id

    tenant_id = require_tenant_id()
    start = dt.datetime(2026, 1, 1)
    statuses = ("open", "pending", "resolved")
    with atomic():
        for first in range(0, n, 500):
            batch = range(first, min(n, first + 500))
            ChatConversation.insert_many([
                {"tenant": tenant_id, "visitor_hash": f"bench{i:012d}", "visitor_name": f"Visitor {i}", "status": statuses[i % 3],
                 "last_message_at": start + dt.timedelta(minutes=53 * i), "created_at": start} for i in batch]).execute()
            Conversation.insert_many([
                {"tenant": tenant_id, "channel": "email", "subject": f"Question {i}", "address": f"c{i}@example.com", "status": statuses[i % 3],
                 "last_message_at": start + dt.timedelta(minutes=53 * i + 7), "created_at": start} for i in batch]).execute()


def floor_page(limit: int = 50) -> list[tuple[Any, ...]]:
    from crm_plugins.channels.models import Conversation
    from crm_plugins.chat.models import ChatConversation

    chats = ChatConversation.select(ChatConversation.last_message_at, ChatConversation.id, ChatConversation.visitor_name, ChatConversation.status,
                                    ChatConversation.assignee).order_by(ChatConversation.last_message_at.desc(), ChatConversation.id.desc()).limit(limit + 1)
    shared = Conversation.select(Conversation.last_message_at, Conversation.id, Conversation.subject, Conversation.status,
                                 Conversation.assignee).order_by(Conversation.last_message_at.desc(), Conversation.id.desc()).limit(limit + 1)
    merged = heapq.merge(list(chats.tuples()), list(shared.tuples()), key=lambda row: row[0], reverse=True)
    return [row for _, row in zip(range(limit), merged, strict=False)]


def best(func: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1000, help="per source (chat, email)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--report", default="")
    args = parser.parse_args()

    from crm_plugins.channels import inbox
    from crm_plugins.channels.service import channels_of
    from crmcore import db
    from crmcore.testing import CrmEnv

    root = Path(tempfile.mkdtemp(prefix="bench-inbox-"))
    env = CrmEnv(root, args.database_url or f"sqlite:///{root / 'crm.db'}")
    env.write_tenant("acme", plugins=["channels", "email", "chat"], settings={"email": {"from_address": "s@acme.test"}})
    app = env.create_app()
    with app.test_request_context(base_url="http://acme.test"), db.database.connection_context(), db.tenant_context(env.tenant("acme")) as _:
        tenant = env.tenant("acme")
        seed(args.conversations)
        channels = channels_of(tenant)
        first, cursor = inbox.page(channels)
        for _ in range(args.conversations // 100):  # a cursor deep in the list
            rows, next_cursor = inbox.page(channels, cursor=cursor)
            cursor = next_cursor or cursor
        assert [r.id for r in first[:2]] and len(floor_page()) == 50
        results = {
            "inbox, first page": best(lambda: inbox.page(channels), args.repeat),
            "floor, first page (two queries merged)": best(floor_page, args.repeat),
            "inbox, deep page (cursor)": best(lambda: inbox.page(channels, cursor=cursor), args.repeat),
            "inbox, status=open": best(lambda: inbox.page(channels, status="open"), args.repeat),
            "inbox, queue=unassigned": best(lambda: inbox.page(channels, queue="unassigned"), args.repeat),
        }
    engine = "PostgreSQL" if env.database_url.startswith("postgres") else "SQLite"
    lines = [f"# Inbox of every channel: one page of 50 over {args.conversations:,} chats + {args.conversations:,} emails ({engine})", "",
             f"Best of {args.repeat} runs, in one process, side by side (`bench/bench_inbox.py --conversations {args.conversations}`).", "",
             "| query | ms |", "| --- | ---: |"]
    lines += [f"| {name} | {ms:.2f} |" for name, ms in results.items()]
    floor = results["floor, first page (two queries merged)"]
    lines += ["", f"First page: {results['inbox, first page'] / floor:.2f}x the floor's time."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        Path(args.report).write_text(text)


if __name__ == "__main__":
    main()
