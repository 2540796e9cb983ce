"""Chat delivery benchmark: N concurrent visitors send over the visitor WebSocket while an
agent listens on the realtime hub (``chat:inbox``); visitor-to-agent latency p50/p99 and
messages per second, side by side with a floor: a bare flask-sock relay (visitor socket ->
in-process fan-out -> agent socket) on the same server stack (werkzeug, threaded, loopback).

    .venv/bin/python bench/bench_chat.py --visitors 100 --messages 5
    .venv/bin/python bench/bench_chat.py --visitors 100 1000 --messages 3 --out bench/results/chat

The chat path does real work per message (SQLite write with client-id dedupe, rate-limit
counter, lead-capture scan, hub publish to two topics, assistant task enqueue); the floor
only moves bytes, so the gap is the cost of the chat itself.
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import websocket
from flask import Flask
from flask_sock import Sock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else float("nan")


def floor_app() -> Flask:
    """A bare relay: what a visitor sends is pushed to every agent socket."""
    app = Flask("floor")
    sock = Sock(app)
    agents: list[queue.Queue] = []
    lock = threading.Lock()

    @sock.route("/agent")
    def agent(ws: Any) -> None:
        q: queue.Queue = queue.Queue()
        with lock:
            agents.append(q)
        ws.send(json.dumps({"type": "hello"}))
        while ws.connected:
            try:
                ws.send(q.get(timeout=0.5))
            except queue.Empty:
                pass

    @sock.route("/visitor")
    def visitor(ws: Any) -> None:
        while True:
            data = ws.receive()
            with lock:
                for q in agents:
                    q.put(data)
            ws.send(json.dumps({"type": "ack"}))

    return app


def run(label: str, visitor_urls: list[str], agent_url: str, agent_headers: list[str], messages: int, extract: Any, interval: float = 0.0) -> dict[str, Any]:
    """``interval`` 0: burst (each visitor sends its next message as soon as the previous
    one is acknowledged: throughput); > 0: paced (each visitor sends one message every
    ``interval`` seconds from a random offset, like people typing: latency at a load)."""
    sent: dict[str, float] = {}
    latencies: list[float] = []
    expected = len(visitor_urls) * messages
    done = threading.Event()
    agent = websocket.WebSocket()
    agent.connect(agent_url, header=agent_headers, timeout=30)
    agent.recv()  # hello

    def listen() -> None:
        agent.settimeout(60)
        while len(latencies) < expected:
            try:
                frame = json.loads(agent.recv())
            except (websocket.WebSocketException, OSError, ValueError):
                break
            cid = extract(frame)
            if cid in sent:
                latencies.append(time.perf_counter() - sent.pop(cid))
        done.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    sockets = []
    for url in visitor_urls:
        ws = websocket.WebSocket()
        ws.connect(url, timeout=60, origin="https://shop.example")
        sockets.append(ws)
    barrier = threading.Barrier(len(sockets) + 1)

    def visitor(i: int, ws: Any) -> None:
        barrier.wait()
        begin = time.perf_counter() + random.random() * interval
        for n in range(messages):
            if interval:
                time.sleep(max(0.0, begin + n * interval - time.perf_counter()))
            cid = f"b{i}-{n}"
            sent[cid] = time.perf_counter()
            ws.send(json.dumps({"type": "message", "content": f"hello {n} from visitor {i}", "client_id": cid}))
            ws.settimeout(60)
            while True:  # wait for the ack before the next message (a typing human is slower)
                frame = json.loads(ws.recv())
                if frame.get("type") in ("ack", "error"):
                    break

    threads = [threading.Thread(target=visitor, args=(i, ws), daemon=True) for i, ws in enumerate(sockets)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(timeout=300)
    done.wait(timeout=60)
    elapsed = time.perf_counter() - started
    for ws in sockets:
        ws.close()
    agent.close()
    ms = [x * 1000 for x in latencies]
    return {"label": label, "mode": f"paced, 1 msg / {interval:g} s per visitor" if interval else "burst", "visitors": len(visitor_urls), "messages": expected, "delivered": len(ms),
            "p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2), "msgs_per_s": round(len(ms) / elapsed, 1)}


def bench_chat(visitors: int, messages: int, interval: float = 0.0) -> dict[str, Any]:
    from crmcore import db
    from crmcore.testing import CrmEnv

    root = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    env = CrmEnv(root, f"sqlite:///{root / 'crm.db'}")
    limit = visitors * messages * 10
    env.write_tenant("acme", hostnames=["127.0.0.1"], plugins=["chat"], settings={"chat": {
        "allowed_origins": ["https://shop.example"], "assistant_enabled": False, "greeting": "",
        "visitor_messages_per_minute": limit, "ip_requests_per_minute": limit, "sessions_per_ip_per_hour": limit}})
    app = env.create_app()  # migrates; the server below is `crm run` in its own process
    port = _free_port()
    proc = _start([sys.executable, "-m", "crmcore.cli", "--config", str(env.config_dir), "run", "--no-worker", "--port", str(port)], port)
    base = f"http://127.0.0.1:{port}"
    from crm_plugins.chat import service

    with app.test_request_context(), db.database.connection_context():
        key = service.public_key(env.tenant("acme"))
    urls = []
    http = requests.Session()
    for _ in range(visitors):
        token = http.post(f"{base}/api/v1/chat/public/session", json={}, headers={"X-Chat-Key": key, "Origin": "https://shop.example"}, timeout=30).json()["token"]
        urls.append(f"ws://127.0.0.1:{port}/chat/ws?key={key}&token={token}&after=0")
    agent_token = env.token("acme", "agent")

    def extract(frame: dict[str, Any]) -> str | None:
        data = frame.get("data") or {}
        return (data.get("message") or {}).get("client_id") if data.get("event") == "message" else None

    try:
        return run("chat", urls, f"ws://127.0.0.1:{port}/realtime/ws?topics=chat:inbox", [f"Authorization: Bearer {agent_token}"], messages, extract, interval)
    finally:
        _stop(proc)
        env.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd: list[str], port: int) -> Any:
    """A server in its own process (so the clients' threads do not share its GIL)."""
    import subprocess

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server on port {port} did not start")


def _stop(proc: Any) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except Exception:  # noqa: BLE001 - a stuck server is killed
        proc.kill()


def bench_floor(visitors: int, messages: int, interval: float = 0.0) -> dict[str, Any]:
    port = _free_port()
    proc = _start([sys.executable, __file__, "--serve-floor", str(port)], port)

    def extract(frame: dict[str, Any]) -> str | None:
        return frame.get("client_id")

    try:
        return run("floor (bare flask-sock relay)", [f"ws://127.0.0.1:{port}/visitor"] * visitors, f"ws://127.0.0.1:{port}/agent", [], messages, extract, interval)
    finally:
        _stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, nargs="+", default=[100])
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a visitor's messages in the paced runs")
    parser.add_argument("--out", default="")
    parser.add_argument("--serve-floor", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        floor_app().run(host="127.0.0.1", port=args.serve_floor, threaded=True)  # the same stack as `crm run`
        return
    rows = []
    for n in args.visitors:
        for interval in (0.0, args.interval):
            for fn in (bench_floor, bench_chat):
                row = fn(n, args.messages, interval)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(rows, indent=2) + "\n")
        lines = ["# Chat delivery: visitor WebSocket -> agent (realtime hub)", "",
                 f"`bench/bench_chat.py --visitors {' '.join(map(str, args.visitors))} --messages {args.messages} --interval {args.interval:g}` on this machine (2 cores shared with other work; SQLite, MemoryHub; each server is werkzeug threaded (`crm run` / `app.run(threaded=True)`) in its own process on loopback, the clients in the benchmark's process).",
                 "Latency is a visitor's send -> the agent's socket receiving it. *burst*: every visitor sends its next message as soon as the previous one is acknowledged (throughput; latency is then mostly queueing). *paced*: each visitor sends one message every interval seconds from a random offset.", "",
                 "| run | mode | visitors | messages | delivered | p50 ms | p99 ms | msgs/s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['label']} | {r['mode']} | {r['visitors']} | {r['messages']} | {r['delivered']} | {r['p50_ms']} | {r['p99_ms']} | {r['msgs_per_s']} |")
        Path(args.out + ".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
