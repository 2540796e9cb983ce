#!/usr/bin/env python
"""Automation under worker kills, at size: ``--runs`` runs (1,000 by default) of a rule
"create a task; wait; create another task" go through real ``crm worker`` processes, each
SIGKILLed after a share of the work (``--kills`` times), the last one left to finish,
with the wake-up sweep run as the every-minute job would. Then: every run is done, and
the tasks are exactly one "one <lead>" and one "two <lead>" per run (none lost, none
twice). tests/plugins/automation/test_worker_kill.py is the same with 40 runs in CI.

    .venv/bin/python bench/bench_automation_kill.py --runs 100          # quick
    .venv/bin/python bench/bench_automation_kill.py                      # 1,000 runs
    .venv/bin/python bench/bench_automation_kill.py --database-url postgresql://postgres@127.0.0.1:5432/<yours>
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)

    from crm_plugins.automation import rules, runs
    from crm_plugins.automation.models import AutomationRun
    from crmcore import db
    from crmcore.sdk import Lead, Task, create_record
    from crmcore.testing import CrmEnv

    root = Path(tempfile.mkdtemp(prefix="bench-automation-kill-"))
    url = args.database_url or f"sqlite:///{root / 'crm.db'}"
    env = CrmEnv(root, url)
    env.write_instance(tasks={"backoff_seconds": 0.05, "lease_seconds": 1.0, "poll_seconds": 0.02})
    env.write_tenant("acme", plugins=["automation"], settings={"automation": {"retry_base_seconds": 0, "runs_per_record_per_hour": 5}})
    app = env.create_app()
    tenant = env.tenant("acme")

    def in_acme():  # noqa: ANN202 - a context manager stack
        import contextlib

        stack = contextlib.ExitStack()
        stack.enter_context(app.app_context())
        stack.enter_context(db.connection())
        stack.enter_context(db.tenant_context(tenant))
        return stack

    with in_acme():
        rules.save(tenant, {"name": "Two tasks with a wait", "entity": "lead", "status": "active", "conditions": {},
                            "trigger": {"type": "record_created"},
                            "steps": [{"action": "create_task", "params": {"title": "one {name}"}}, {"action": "wait", "params": {"seconds": 0.5}},
                                      {"action": "create_task", "params": {"title": "two {name}"}}]})
        for i in range(args.runs):
            create_record(Lead, {"name": f"L{i}"})

    def titles() -> list[str]:
        with in_acme():
            return [t for (t,) in Task.select(Task.title).tuples()]

    def statuses() -> dict[str, int]:
        with in_acme():
            return dict(collections.Counter(s for (s,) in AutomationRun.select(AutomationRun.status).tuples()))

    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    child_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), child_env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "crmcore.cli", "--config", str(env.config_dir), "worker", "--no-scheduler"]
    started = time.monotonic()
    killed_at: list[int] = []
    worker = None
    try:
        for k in range(args.kills + 1):
            worker = subprocess.Popen(cmd, env=child_env, stdout=open(root / f"worker{k}.log", "ab"), stderr=subprocess.STDOUT)
            if k == args.kills:
                break
            target = 2 * args.runs * (k + 1) // (args.kills + 2)  # tasks created before this kill
            while len(titles()) < target and time.monotonic() - started < args.timeout:
                with in_acme():
                    runs.wake_due(tenant)
                time.sleep(0.2)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            killed_at.append(len(titles()))
        while time.monotonic() - started < args.timeout:
            with in_acme():
                runs.wake_due(tenant)
            if statuses() == {"done": args.runs}:
                break
            time.sleep(0.5)
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    elapsed = time.monotonic() - started
    found = titles()
    counts = collections.Counter(found)
    expected = {f"one L{i}" for i in range(args.runs)} | {f"two L{i}" for i in range(args.runs)}
    lost = sorted(expected - set(counts))
    doubled = sorted(t for t, n in counts.items() if n > 1)
    print(f"database: {'postgresql' if url.startswith('postgres') else 'sqlite'}; {args.runs} runs; "
          f"{args.kills} SIGKILLs (at {', '.join(map(str, killed_at))} tasks created)")
    print(f"finished in {elapsed:.0f} s: runs {statuses()}; tasks {len(found)} of {len(expected)}; lost {len(lost)}; twice {len(doubled)}")
    if lost or doubled:
        print("lost:", lost[:10], "twice:", doubled[:10])
    return 0 if not lost and not doubled and statuses() == {"done": args.runs} else 1


if __name__ == "__main__":
    os.environ.pop("CRM_CONFIG", None)
    raise SystemExit(main())
