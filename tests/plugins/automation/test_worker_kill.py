"""A real worker process SIGKILLed while runs with a wait step go through it, then
another started: every run finishes, no step runs twice, none is skipped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from crm_plugins.automation import runs
from crm_plugins.automation.models import AutomationRun
from crmcore import db
from crmcore.sdk import Lead, Task, create_record
from tests.conftest import subprocess_env
from tests.plugins.automation.conftest import FAST, in_tenant, rule_body

RUNS = 40


@pytest.fixture
def env(crm_env: Any) -> Any:
    crm_env.write_instance(tasks={"backoff_seconds": 0.05, "lease_seconds": 1.0, "poll_seconds": 0.02})
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["automation"], settings={"automation": FAST})
    crm_env.create_app()
    return crm_env


def start_worker(env: Any, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "crmcore.cli", "--config", str(env.config_dir), "worker", "--no-scheduler"]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT)


def task_titles(env: Any) -> list[str]:
    with in_tenant(env):
        return [t.title for t in Task.select(Task.title)]


def statuses(env: Any) -> dict[str, int]:
    with in_tenant(env):
        out: dict[str, int] = {}
        for run in AutomationRun.select(AutomationRun.status):
            out[run.status] = out.get(run.status, 0) + 1
        return out


def test_sigkill_during_runs_with_waits_loses_nothing_and_repeats_nothing(env: Any, admin: Any, tmp_path: Path) -> None:
    admin("POST", "/automation/rules", rule_body(conditions={}, steps=[
        {"action": "create_task", "params": {"title": "one {name}"}},
        {"action": "wait", "params": {"seconds": 0.5}},
        {"action": "create_task", "params": {"title": "two {name}"}},
    ]), status=201)
    with in_tenant(env):
        for i in range(RUNS):
            create_record(Lead, {"name": f"L{i}"})
    procs: list[subprocess.Popen] = []
    try:
        first = start_worker(env, tmp_path / "w1.log")
        procs.append(first)
        deadline = time.monotonic() + 30
        while len(task_titles(env)) < RUNS // 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=5) == -signal.SIGKILL
        killed_at = len(task_titles(env))
        assert 0 < killed_at < RUNS, (tmp_path / "w1.log").read_text()[-2000:]
        second = start_worker(env, tmp_path / "w2.log")
        procs.append(second)
        tenant = env.tenant("acme")
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            with env.app.app_context(), db.connection(), db.tenant_context(tenant):
                runs.wake_due(tenant)  # what the every-minute job does
            if statuses(env) == {"done": RUNS}:
                break
            assert second.poll() is None, (tmp_path / "w2.log").read_text()[-2000:]
            time.sleep(0.1)
        assert statuses(env) == {"done": RUNS}
        titles = task_titles(env)
        assert sorted(titles) == sorted([f"one L{i}" for i in range(RUNS)] + [f"two L{i}" for i in range(RUNS)])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
