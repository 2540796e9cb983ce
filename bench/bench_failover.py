"""Failover of workers and the scheduler: SIGKILL and SIGTERM of `crm worker` processes.

Two `crm worker` processes (tasks + scheduler) run the sample plugin (tests/sample_plugin:
a job every second, tasks that write a receipt) on one database. The bench then, rounds
times over:

* enqueues tasks, SIGKILLs the process holding the scheduler lease (in the middle of
  its tasks), starts a replacement, and measures how long the jobs stop (from the kill
  to the next job receipt) and whether every task ran exactly once;
* does the same with SIGTERM (a clean stop hands the lease back at once).

Figures: job gap after SIGKILL / SIGTERM (max over rounds; the target is under 30 s),
tasks lost and tasks run twice (both must be 0).

    python bench/bench_failover.py [--rounds 3] [--tasks 200] [--pg-url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parents[1]


def install_sample(work: Path) -> Path:
    src = work / "sample_src"
    shutil.copytree(ROOT / "tests" / "sample_plugin", src)
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(src)], check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--pg-url", default="", help="a PostgreSQL server URL (a database is created and dropped)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crm-failover-"))
    site = install_sample(work)
    sys.path.insert(0, str(site))
    sys.path.insert(0, str(ROOT))
    database_url, drop = f"sqlite:///{work / 'crm.db'}", None
    if args.pg_url:
        import psycopg2

        name = f"bench_failover_{uuid.uuid4().hex[:8]}"
        admin = psycopg2.connect(args.pg_url)
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        database_url = args.pg_url.rsplit("/", 1)[0] + "/" + name

        def drop() -> None:
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    config = work / "config"
    (config / "tenants").mkdir(parents=True)
    (config / "crm.toml").write_text(tomli_w.dumps({"database_url": database_url, "secret_key": "bench", "tasks": {"poll_seconds": 0.05}}))
    (config / "tenants" / "alpha.toml").write_text(tomli_w.dumps({"name": "Alpha", "hostnames": ["alpha.test"], "plugins": ["sample"]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, "-m", "crmcore.cli", "--config", str(config), "migrate"], env=env, check=True, capture_output=True)

    from crm_sample.models import SampleReceipt

    from crmcore import db, tasks
    from crmcore.app import create_app
    from crmcore.models import Lease, Task

    app = create_app(config)
    crm = app.extensions["crm"]
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        log = open(work / f"worker-{len(procs)}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "crmcore.cli", "--config", str(config), "worker", "--concurrency", "2"], env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    def holder_pid() -> int | None:
        with app.app_context(), db.database.connection_context():
            row = Lease.get_or_none(Lease.name == "scheduler")
        return int(row.holder.split(":")[0]) if row and row.expires_at > db.utcnow() else None

    def job_receipts() -> int:
        with app.app_context(), db.database.connection_context(), db.tenant_context(crm.tenant("alpha")):
            return SampleReceipt.select().where(SampleReceipt.kind == "job").count()

    def wait(predicate, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if predicate():
                return time.monotonic() - started
            time.sleep(0.05)
        raise SystemExit(f"timed out after {timeout}s")

    results = {"SIGKILL": [], "SIGTERM": []}
    enqueued: list[str] = []
    try:
        start()
        start()
        live = {p.pid: p for p in procs}
        wait(lambda: holder_pid() in live, 30)
        for round_no in range(args.rounds):
            for how in ("SIGKILL", "SIGTERM"):
                with app.app_context(), db.database.connection_context():
                    tenant = crm.tenant("alpha")
                    for i in range(args.tasks):
                        detail = f"{how}-{round_no}-{i}"
                        tasks.enqueue("sample.record", {"detail": detail}, tenant=tenant)
                        enqueued.append(detail)
                leader = live.pop(holder_pid())  # the process holding the scheduler lease
                before = job_receipts()
                t0 = time.monotonic()
                leader.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
                leader.wait(timeout=30)
                wait(lambda: job_receipts() > before + 1 and holder_pid() in live, 120)
                results[how].append(time.monotonic() - t0)
                replacement = start()
                live[replacement.pid] = replacement
        # every task done, once
        def drained() -> bool:
            with app.app_context(), db.database.connection_context():
                return not Task.select().where(Task.status.in_(("queued", "running"))).exists()

        wait(drained, 180)
        with app.app_context(), db.database.connection_context(), db.tenant_context(crm.tenant("alpha")):
            done = [r.detail for r in SampleReceipt.select().where(SampleReceipt.kind == "task")]
        lost = len(set(enqueued) - set(done))
        twice = len(done) - len(set(done))
        backend = "PostgreSQL" if args.pg_url else "SQLite"
        print(f"\n## Failover ({backend}, {args.rounds} rounds, {args.tasks} tasks enqueued before each stop)\n")
        print("| stop | job gap, each round (s) | max (s) |")
        print("|---|---|---|")
        for how, gaps in results.items():
            print(f"| {how} of the scheduler's holder | {', '.join(f'{g:.1f}' for g in gaps)} | {max(gaps):.1f} |")
        print(f"\ntasks: {len(enqueued)} enqueued, {len(set(done))} done, {lost} lost, {twice} run twice")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        crm.shutdown()
        if drop is not None:
            drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
