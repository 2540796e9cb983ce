"""Plain HTTP beside open WebSockets: the README's production command (gunicorn with
crmcore.gunicorn_conf, gevent workers) answering the same HTTP load with 0 open sockets
(the floor) and with N open sockets of every kind a browser keeps open: lead and deal
boards (``list:lead`` / ``list:deal``), record pages (``record:lead:<id>``), agents'
inboxes (``chat:inbox``) on /realtime/ws, and chat widget visitors on /chat/ws.

    .venv/bin/python bench/bench_websockets.py                        # 1,000 sockets, PostgreSQL + Redis
    .venv/bin/python bench/bench_websockets.py --sockets 200 --requests 500 --backend sqlite
    .venv/bin/python bench/bench_websockets.py --out bench/results/websockets

The HTTP load is ``GET /api/v1/leads?limit=20`` with a bearer token from ``--concurrency``
client threads back to back, while a writer creates a lead every 0.25 s (its live event
goes out to every board socket). Two instances of the command run on one database and
Redis, one holding the sockets, the floor none, and the load goes to them in alternating
batches (``--rounds``), so that both see the same noise of a shared machine. After the load every board socket must have heard the
last lead's event and a sample of widget visitors must get their message acknowledged:
the sockets were alive, not just open. Target: p99 under 200 ms with 1,000 sockets.

A benchmark, run by hand: nothing in tests/ imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import websocket

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = ("board", "record", "inbox", "widget")
SHARE = {"board": 0.4, "record": 0.1, "inbox": 0.2, "widget": 0.3}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else float("nan")


def raise_nofile(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_pg_database(url: str) -> None:
    from urllib.parse import urlparse

    import psycopg2

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = psycopg2.connect(host=parsed.hostname, port=parsed.port or 5432, user=parsed.username, password=parsed.password, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()


class Server:
    """The production command in a subprocess (its own processes: no GIL shared with us)."""

    def __init__(self, config_dir: Path, workers: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
        env.update(CRM_CONFIG_DIR=str(config_dir), PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-m", "gunicorn", "-c", "python:crmcore.gunicorn_conf", "-w", str(workers), "-b", f"127.0.0.1:{self.port}", "crmcore.wsgi:app"]
        self.command = " ".join(cmd[1:]).replace(f"127.0.0.1:{self.port}", "127.0.0.1:PORT")
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench-ws-gunicorn-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.base}/login", timeout=0.5)
                return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not start; see {self.log.name}")

    def workers(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def usage(self) -> tuple[float, float]:
        """CPU seconds and resident MiB of the workers, summed."""
        cpu = rss = 0.0
        for pid in self.workers():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().split()
                cpu += (int(stat[13]) + int(stat[14])) / os.sysconf("SC_CLK_TCK")
                rss += int(stat[23]) * os.sysconf("SC_PAGE_SIZE") / 2**20
            except OSError:
                pass
        return cpu, rss

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def batch(server: "Server", headers: dict[str, str], total: int, concurrency: int) -> dict[str, Any]:
    """``total`` GETs from ``concurrency`` threads back to back; a writer creates a lead
    every 0.25 s meanwhile. Raw latencies, errors, wall time and the workers' CPU."""
    base = server.base
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    left = [total]
    done = threading.Event()
    created: list[int] = []

    def client() -> None:
        with requests.Session() as http:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                started = time.perf_counter()
                try:
                    ok = http.get(f"{base}/api/v1/leads?limit=20", headers=headers, timeout=30).status_code == 200
                except requests.RequestException:
                    ok = False
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    errors[0] += not ok

    def writer() -> None:
        with requests.Session() as http:
            n = 0
            while not done.wait(0.25):
                n += 1
                answer = http.post(f"{base}/api/v1/leads", json={"name": f"Load {n}"}, headers=headers, timeout=30)
                if answer.status_code == 201:
                    created.append(answer.json()["id"])

    cpu0, _ = server.usage()
    wall0 = time.monotonic()
    writer_thread = threading.Thread(target=writer, daemon=True)
    writer_thread.start()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    writer_thread.join()
    cpu1, rss = server.usage()
    return {"latencies": latencies, "errors": errors[0], "wall": time.monotonic() - wall0, "cpu": cpu1 - cpu0, "rss": rss, "created": len(created)}


def summarise(batches: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for b in batches for x in b["latencies"]]
    wall = sum(b["wall"] for b in batches)
    return {
        "requests": len(latencies), "errors": sum(b["errors"] for b in batches), "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(pct(latencies, 50) * 1000, 1), "p99_ms": round(pct(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1), "mean_ms": round(statistics.mean(latencies) * 1000, 1),
        "leads_created": sum(b["created"] for b in batches), "worker_cpu_pct": round(100 * sum(b["cpu"] for b in batches) / wall),
        "worker_rss_mib": round(batches[-1]["rss"]),
    }


def open_sockets(server: Server, count: int, token: str, chat_key: str, lead_ids: list[int]) -> dict[str, list[websocket.WebSocket]]:
    ws_base = f"ws://127.0.0.1:{server.port}"
    auth = [f"Authorization: Bearer {token}"]
    plan: list[tuple[str, str, list[str]]] = []
    for kind in KINDS:
        n = round(count * SHARE[kind]) if kind != "widget" else count - len(plan)
        for i in range(n):
            if kind == "board":
                plan.append((kind, f"{ws_base}/realtime/ws?topics={'list:lead' if i % 2 == 0 else 'list:deal'}", auth))
            elif kind == "record":
                plan.append((kind, f"{ws_base}/realtime/ws?topics=record:lead:{lead_ids[i % len(lead_ids)]}", auth))
            elif kind == "inbox":
                plan.append((kind, f"{ws_base}/realtime/ws?topics=chat:inbox", auth))
            else:
                plan.append((kind, "", []))
    widget_count = sum(1 for k, _, _ in plan if k == "widget")
    with requests.Session() as http:  # one conversation per visitor, as the widget starts one
        visitor_tokens = [http.post(f"{server.base}/api/v1/chat/public/session", json={}, headers={"X-Chat-Key": chat_key}, timeout=30).json()["token"] for _ in range(widget_count)]
    tokens = iter(visitor_tokens)
    plan = [(k, url or f"{ws_base}/chat/ws?key={chat_key}&token={next(tokens)}&after=0", h) for k, url, h in plan]

    def connect(item: tuple[str, str, list[str]]) -> tuple[str, websocket.WebSocket]:
        kind, url, headers = item
        ws = websocket.WebSocket()
        ws.crm_topic = url.rpartition("topics=")[2] if "topics=" in url else ""
        ws.connect(url, header=headers, timeout=30)
        ws.settimeout(30)
        first = json.loads(ws.recv())
        assert first.get("type") in ("hello", "ready"), first
        return kind, ws

    by_kind: dict[str, list[websocket.WebSocket]] = {k: [] for k in KINDS}
    with ThreadPoolExecutor(16) as pool:
        for kind, ws in pool.map(connect, plan):
            by_kind[kind].append(ws)
    return by_kind


def check_alive(server: Server, headers: dict[str, str], by_kind: dict[str, list[websocket.WebSocket]]) -> dict[str, Any]:
    """Every list:lead board hears a new lead; a sample of visitors get acks."""
    lead = requests.post(f"{server.base}/api/v1/leads", json={"name": "Last one"}, headers=headers, timeout=30).json()["id"]
    boards = [ws for ws in by_kind["board"] if ws.crm_topic == "list:lead"]
    heard = 0
    deadline = time.monotonic() + 60  # pings would keep a silent socket's recv going
    for ws in boards:
        ws.settimeout(30)
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("topic") == "list:lead" and msg["data"].get("id") == lead:
                heard += 1
                break
    acked = 0
    sample = by_kind["widget"][:20]
    for i, ws in enumerate(sample):
        ws.send(json.dumps({"type": "message", "content": f"hello {i}", "client_id": f"bench-{i}"}))
    for i, ws in enumerate(sample):
        ws.settimeout(30)
        while time.monotonic() < deadline + 30:
            msg = json.loads(ws.recv())
            if msg.get("type") == "ack" and msg.get("client_id") == f"bench-{i}":
                acked += 1
                break
    return {"boards_heard_last_lead": f"{heard}/{len(boards)}", "visitors_acked": f"{acked}/{len(sample)}"}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from crmcore import db
    from crmcore.testing import CrmEnv

    nofile = raise_nofile(max(args.sockets) * 3 + 1024)
    root = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    if args.backend == "postgresql":
        fresh_pg_database(args.pg_url)
        database_url = args.pg_url
    else:
        database_url = f"sqlite:///{root / 'crm.db'}"
    # Redis, as in production: with an in-memory hub per worker, an event published by
    # one worker would not reach the sockets of the other.
    env = CrmEnv(root, database_url, args.redis_url)
    limit = 1_000_000
    env.write_tenant("acme", hostnames=["127.0.0.1"], plugins=["chat", "kanban"], settings={"chat": {
        "assistant_enabled": False, "greeting": "", "visitor_messages_per_minute": limit,
        "ip_requests_per_minute": limit, "sessions_per_ip_per_hour": limit}})
    app = env.create_app()
    token = env.token("acme")
    from crm_plugins.chat import service

    with app.test_request_context(), db.database.connection_context():
        chat_key = service.public_key(env.tenant("acme"))
    headers = {"Authorization": f"Bearer {token}"}
    # Two instances of the same command on the same database and Redis: the floor keeps
    # no socket, the other holds them; their batches alternate, so both see the same
    # noise from whatever else runs on the machine.
    floor, loaded = Server(env.config_dir, args.workers), Server(env.config_dir, args.workers)
    rows = []
    try:
        with requests.Session() as http:
            lead_ids = [http.post(f"{loaded.base}/api/v1/leads", json={"name": f"Seed {i}"}, headers=headers, timeout=30).json()["id"] for i in range(50)]
        for server in (floor, loaded):  # warm-up
            batch(server, headers, 200, args.concurrency)
        common = {"backend": args.backend, "workers": args.workers, "concurrency": args.concurrency, "rounds": args.rounds, "nofile": nofile}
        by_kind: dict[str, list[websocket.WebSocket]] = {k: [] for k in KINDS}
        held = 0
        for count in sorted(args.sockets):
            started = time.monotonic()
            for kind, sockets in open_sockets(loaded, count - held, token, chat_key, lead_ids).items():
                by_kind[kind].extend(sockets)
            opened_s, held = round(time.monotonic() - started, 1), count
            time.sleep(2)  # let the handshakes' work settle
            floor_batches: list[dict[str, Any]] = []
            loaded_batches: list[dict[str, Any]] = []
            for round_no in range(args.rounds):
                pairs = [(floor, floor_batches), (loaded, loaded_batches)]
                for server, batches in (pairs if round_no % 2 == 0 else pairs[::-1]):
                    batches.append(batch(server, headers, args.requests // args.rounds, args.concurrency))
            alive = check_alive(loaded, headers, by_kind)
            rows.append({"run": "floor: no socket", "sockets": 0, "beside": count, **common, **summarise(floor_batches)})
            print(json.dumps(rows[-1]), flush=True)
            rows.append({"run": "sockets open", "sockets": count, "mix": {k: len(v) for k, v in by_kind.items()}, "opened_in_s": opened_s, **common, **summarise(loaded_batches), **alive})
            print(json.dumps(rows[-1]), flush=True)
        for sockets in by_kind.values():
            for ws in sockets:
                ws.close(timeout=0.1)
        rows[0]["command"] = loaded.command
    finally:
        floor.stop()
        loaded.stop()
        env.close()
    return rows


def report(rows: list[dict[str, Any]], out: str, argv: list[str]) -> None:
    Path(out + ".json").write_text(json.dumps(rows, indent=2) + "\n")
    first = rows[0]
    lines = [
        "# Plain HTTP beside open WebSockets (the production command)", "",
        f"`bench/bench_websockets.py {' '.join(argv)}` on this machine (2 cores shared with other work; the clients in the benchmark's process).",
        f"Server: `{first['command']}` ({first['backend']}, Redis hub); `ulimit -n` {first['nofile']}.",
        f"Load: `GET /api/v1/leads?limit=20` with a bearer token, {first['concurrency']} clients back to back, and a lead created every 0.25 s (its live event goes to every board socket).",
        f"Two instances of that command on one database and Redis: the floor holds no socket, the other the sockets; {first['rounds']} alternating batches each, so both share the machine's noise.",
        "Sockets: 40% boards (`list:lead`/`list:deal`), 10% record pages (`record:lead:<id>`), 20% inboxes (`chat:inbox`) on /realtime/ws, 30% chat widget visitors on /chat/ws.",
        "*alive*: after the load every `list:lead` board heard a new lead's event, and 20 visitors had a message acknowledged.", "",
        "| run | sockets | requests | errors | req/s | p50 ms | p99 ms | max ms | worker CPU % | worker RSS MiB | alive |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        alive = f"boards {r['boards_heard_last_lead']}, visitors {r['visitors_acked']}" if "boards_heard_last_lead" in r else ""
        lines.append(f"| {r['run']} | {r['sockets']} | {r['requests']} | {r['errors']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['worker_cpu_pct']} | {r['worker_rss_mib']} | {alive} |")
    Path(out + ".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=10, help="alternating batches per server (each --requests/--rounds)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn -w (the README's production command has 2)")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("CRM_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/crm_bench_ws"))
    parser.add_argument("--redis-url", default=os.environ.get("CRM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    rows = run(args)
    if args.out:
        report(rows, args.out, sys.argv[1:])


if __name__ == "__main__":
    main()
