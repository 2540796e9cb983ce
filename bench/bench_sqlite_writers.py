#!/usr/bin/env python
"""Concurrent writers against ``crm run`` on SQLite, the default install (issue 19).

Starts ``crm run --demo`` (every bundled plugin on, so their signal receivers write too)
on a fresh SQLite instance, then W writer threads, each with its own HTTP connection,
send back to back for D seconds: create a lead with a unique email and two tags, and
every third request move one of the writer's deals to the next stage. It reports every
answer that is not a success, the latency, and whether every acknowledged create is in
the database. The target is the issue's "SQLite crm run with 8 concurrent writers: 0
errors".

    .venv/bin/python bench/bench_sqlite_writers.py --writers 8 --seconds 30 \\
        --report bench/results/sqlite-writers.md
    # the same load against another checkout's code (say, before the fix):
    .venv/bin/python bench/bench_sqlite_writers.py --crm /work/main/.venv/bin/crm --label before
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
DEFAULT_CRM = str(Path(sys.executable).with_name("crm"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}


def start_server(crm: str, config: Path, port: int) -> subprocess.Popen:
    """``crm run --demo`` on a fresh config folder; returns once it answers."""
    with open(config.parent / "server.log", "w") as log:  # the child keeps its own copy
        proc = subprocess.Popen([crm, "--config", str(config), "run", "--demo", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=_env())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"crm run exited: see {config.parent / 'server.log'}")
        try:
            requests.get(f"http://127.0.0.1:{port}/login", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("crm run did not answer within 60 s")


def make_token(crm: str, config: Path) -> str:
    out = subprocess.run([crm, "--config", str(config), "tokens", "create", "--tenant", "demo", "--role", "admin", "--name", "bench"], capture_output=True, text=True, env=_env(), check=True)
    return out.stdout.strip().splitlines()[-1]


def run_writers(base: str, token: str, writers: int, seconds: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    setup = requests.Session()
    setup.headers.update(headers)
    pipelines = setup.get(f"{base}/api/v1/pipelines").json()["items"]
    stages = [s["id"] for s in next(p for p in pipelines if p["is_default"])["stages"] if not s["is_lost"]]

    def make_deal(title: str) -> int:
        # Not measured; retried, since the code under test may refuse even a lone writer.
        for _ in range(20):
            response = setup.post(f"{base}/api/v1/deals", json={"title": title})
            if response.ok:
                return response.json()["id"]
            time.sleep(0.2)
        raise SystemExit(f"could not create a deal: {response.status_code} {response.text[:200]}")

    deals = [[make_deal(f"bench w{w} d{d}") for d in range(3)] for w in range(writers)]

    statuses: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    latencies: list[float] = []
    created: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(writers)

    def writer(w: int) -> None:
        session = requests.Session()
        session.headers.update(headers)
        barrier.wait()
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
            if n % 3 == 0:
                kind = "move deal"
                url, method = f"{base}/api/v1/deals/{deals[w][n % 3]}", "PATCH"
                body: dict[str, Any] = {"stage_id": stages[(n // 3) % len(stages)]}
            else:
                kind = "create lead"
                email = f"bench-w{w}-n{n}@example.com"
                url, method = f"{base}/api/v1/leads", "POST"
                body = {"name": f"Writer {w} lead {n}", "email": email, "tags": [f"w{w}", "bench"]}
            started = time.perf_counter()
            try:
                response = session.request(method, url, json=body, timeout=60)
                status = str(response.status_code)
            except requests.RequestException as exc:
                status, response = f"no answer ({type(exc).__name__})", None
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[f"{kind} {status}"] += 1
                if response is not None and response.ok:
                    if kind == "create lead":
                        created.append(email)
                elif len(errors) < 10:
                    errors.append(f"{kind} {status}: {response.text[:160] if response is not None else ''}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    latencies.sort()
    failed = sum(c for k, c in statuses.items() if not k.rsplit(" ", 1)[-1].startswith("2"))
    return {
        "requests": len(latencies),
        "failed": failed,
        "statuses": dict(sorted(statuses.items())),
        "sample_errors": errors,
        "created": created,
        "per_second": len(latencies) / wall,
        "p50": statistics.median(latencies) if latencies else 0.0,
        "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else 0.0,
        "max": latencies[-1] if latencies else 0.0,
    }


def stored_emails(db_path: Path) -> set[str]:
    conn = sqlite3.connect(db_path)
    try:
        return {row[0] for row in conn.execute("SELECT email FROM crm_lead WHERE email LIKE 'bench-%'")}
    finally:
        conn.close()


def bench(crm: str, writers: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="crm-writers-") as tmp:
        config = Path(tmp) / "config"
        port = _free_port()
        proc = start_server(crm, config, port)
        try:
            token = make_token(crm, config)
            result = run_writers(f"http://127.0.0.1:{port}", token, writers, seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        stored = stored_emails(Path(tmp) / "instance" / "crm.db")
        result["lost"] = sorted(set(result.pop("created")) - stored)
        result["creates_acknowledged"] = sum(c for k, c in result["statuses"].items() if k.startswith("create lead 2"))
        result["creates_stored"] = len(stored)
    return result


def report(results: list[tuple[str, dict[str, Any]]], writers: int, seconds: float) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# SQLite `crm run` with concurrent writers",
        "",
        (
            f"`bench/bench_sqlite_writers.py --writers {writers} --seconds {seconds:g}`, {now}, Python {platform.python_version()}, "
            f"{platform.machine()}, {os.cpu_count()} cores shared with other work."
        ),
        "",
        (
            f"`crm run --demo` (the development server, every bundled plugin on, worker and scheduler in the process) on a fresh "
            f"SQLite file; {writers} threads, each with its own connection, back to back for {seconds:g} s: two of three requests "
            "create a lead with a unique email and two tags (`POST /api/v1/leads`), one of three moves a deal to another stage "
            "(`PATCH /api/v1/deals/<id>`). Failed = any answer that is not 2xx. Lost = a create answered 201 whose lead is not in "
            "the database afterwards."
        ),
        "",
        "| code | requests | failed | req/s | p50 ms | p99 ms | max ms | creates acknowledged | stored | lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, r in results:
        lines.append(f"| {label} | {r['requests']:,} | {r['failed']:,} | {r['per_second']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['creates_acknowledged']:,} | {r['creates_stored']:,} | {len(r['lost'])} |")
    for label, r in results:
        lines += ["", f"**{label}**, answers: " + ", ".join(f"{k}: {v:,}" for k, v in r["statuses"].items())]
        for error in r["sample_errors"][:3]:
            lines.append(f"- `{error}`")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--crm", action="append", help="the crm command to run (repeatable; default: this venv's)")
    parser.add_argument("--label", action="append", help="a label per --crm (default: the command's path)")
    parser.add_argument("--report", type=Path, help="write the markdown report here")
    args = parser.parse_args()
    commands = args.crm or [DEFAULT_CRM]
    labels = args.label or commands
    results = []
    for crm, label in zip(commands, labels):
        print(f"{label}: {args.writers} writers for {args.seconds:g} s ...", flush=True)
        result = bench(crm, args.writers, args.seconds)
        print(f"  {result['requests']} requests, {result['failed']} failed, {len(result['lost'])} lost; {result['statuses']}", flush=True)
        results.append((label, result))
    text = report(results, args.writers, args.seconds)
    if args.report:
        args.report.write_text(text)
    print(text)
    if any(r["failed"] or r["lost"] for label, r in results if label == labels[-1]):
        sys.exit(1)


if __name__ == "__main__":
    main()
