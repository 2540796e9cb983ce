"""Agent replies across two server processes reach the chat widget: none dropped.

Two `crm run --no-worker` processes on one PostgreSQL database and one Redis (a private
redis-server); visitors hold the widget's WebSocket on the first process; agents post
replies through the API of both processes at once, several per second per conversation
(ids are handed out in call order, commits land in another order). Each visitor counts
the agent replies its socket delivered against those the database holds. Issue 19 found
1.3-2 % dropped at 5 replies/s before the fix.

    python bench/bench_widget_replies.py --pg-url postgresql://postgres@127.0.0.1:5432/postgres \\
        [--visitors 10] [--replies 50] [--rate 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import requests
import tomli_w
import websocket

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "http://127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", required=True, help="a PostgreSQL server URL (a database is created and dropped)")
    parser.add_argument("--visitors", type=int, default=10)
    parser.add_argument("--replies", type=int, default=50, help="agent replies per conversation")
    parser.add_argument("--rate", type=float, default=5.0, help="replies per second per conversation")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crm-widget-"))
    name = f"bench_widget_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.pg_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    database_url = args.pg_url.rsplit("/", 1)[0] + "/" + name
    redis_port = free_port()
    redis_proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = work / "config"
    (config / "tenants").mkdir(parents=True)
    (config / "crm.toml").write_text(tomli_w.dumps({"database_url": database_url, "redis_url": f"redis://127.0.0.1:{redis_port}/0", "secret_key": "bench-" + uuid.uuid4().hex, "api_rate_per_minute": 0}))
    limits = {"allowed_origins": [ORIGIN], "assistant_enabled": False, "ip_requests_per_minute": 100000, "sessions_per_ip_per_hour": 100000, "visitor_messages_per_minute": 100000}
    (config / "tenants" / "acme.toml").write_text(tomli_w.dumps({"name": "Acme", "hostnames": ["127.0.0.1"], "plugins": ["chat"], "settings": {"chat": limits}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run([sys.executable, "-m", "crmcore.cli", "--config", str(config), "migrate"], env=env, check=True, capture_output=True)
    token = subprocess.run([sys.executable, "-m", "crmcore.cli", "--config", str(config), "tokens", "create", "--tenant", "acme", "--role", "admin", "--name", "bench"], env=env, check=True, capture_output=True, text=True).stdout.strip().split()[-1]
    ports = [free_port(), free_port()]
    servers = [subprocess.Popen([sys.executable, "-m", "crmcore.cli", "--config", str(config), "run", "--no-worker", "--port", str(p)], env=env, stdout=open(work / f"server-{p}.log", "ab"), stderr=subprocess.STDOUT) for p in ports]
    try:
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        for base in bases:
            wait_http(base + "/login")
        sys.path.insert(0, str(ROOT))
        from crmcore.app import create_app

        app = create_app(config)
        from crm_plugins.chat import service

        with app.test_request_context(base_url="http://127.0.0.1"):
            from crmcore import db

            with db.database.connection_context():
                key = service.public_key(app.extensions["crm"].tenant("acme"))
        app.extensions["crm"].shutdown()
        headers = {"Authorization": f"Bearer {token}"}
        visitors = []
        for _ in range(args.visitors):
            session = requests.post(bases[0] + "/api/v1/chat/public/session", json={"name": "Bench"}, headers={"X-Chat-Key": key, "Origin": ORIGIN}, timeout=10).json()
            ws = websocket.WebSocket()
            ws.connect(f"ws://127.0.0.1:{ports[0]}/chat/ws?key={key}&token={session['token']}&after=0", origin=ORIGIN, timeout=10)
            visitors.append({"id": session["conversation"]["id"], "ws": ws, "got": set()})

        def read(visitor: dict) -> None:
            ws = visitor["ws"]
            ws.settimeout(1.0)
            idle_since = None
            while True:
                try:
                    frame = json.loads(ws.recv())
                except websocket.WebSocketTimeoutException:
                    if visitor.get("done") and (idle_since := idle_since or time.monotonic()) and time.monotonic() - idle_since > 5:
                        return
                    continue
                except Exception:
                    return
                idle_since = None
                if frame.get("type") == "message" and frame["message"]["sender"] == "agent":
                    visitor["got"].add(frame["message"]["id"])

        def reply(visitor: dict) -> None:
            session = requests.Session()
            for n in range(args.replies):
                base = bases[n % 2]  # both processes, alternately
                session.post(f"{base}/api/v1/chat/conversations/{visitor['id']}/messages", json={"content": f"reply {n}"}, headers=headers, timeout=10)
                time.sleep(1 / args.rate)
            visitor["done"] = True

        readers = [threading.Thread(target=read, args=(v,)) for v in visitors]
        writers = [threading.Thread(target=reply, args=(v,)) for v in visitors] + [threading.Thread(target=reply, args=(v,)) for v in visitors]
        for thread in readers + writers:
            thread.start()
        for thread in writers:
            thread.join()
        for visitor in visitors:
            visitor["done"] = True
        for thread in readers:
            thread.join(timeout=30)
        conn = psycopg2.connect(database_url)
        stored = {}
        with conn.cursor() as cur:
            cur.execute("SELECT conversation_id, id FROM chat_message WHERE sender = 'agent'")
            for conversation_id, message_id in cur.fetchall():
                stored.setdefault(conversation_id, set()).add(message_id)
        conn.close()
        total = sum(len(stored.get(v["id"], ())) for v in visitors)
        dropped = sum(len(stored.get(v["id"], set()) - v["got"]) for v in visitors)
        print(f"\n## Widget replies across two processes ({args.visitors} visitors, 2 writers each at {args.rate:g} replies/s, {args.replies} replies per writer)\n")
        print(f"agent replies stored: {total}; delivered to the widget: {total - dropped}; dropped: {dropped} ({100 * dropped / max(total, 1):.2f} %)")
        for visitor in visitors:
            visitor["ws"].close()
    finally:
        for proc in servers:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis_proc.kill()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
