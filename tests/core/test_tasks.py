"""The durable task queue and the scheduler lease, on a real database (SQLite, or
PostgreSQL with CRM_TEST_DATABASE_URL) and with real worker processes.

Tenants (the ``sample_env`` fixture): alpha has the sample plugin on, beta has it off.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from crmcore import db, tasks
from crmcore.db import tenant_context, utcnow
from crmcore.jobs import Scheduler, acquire_lease
from crmcore.models import Task
from crmcore.tasks import UnknownTaskKind, Worker
from tests.conftest import subprocess_env

# ---------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def enqueue(env, kind: str, payload: dict | None = None, slug: str | None = "alpha", **kwargs: Any) -> Task:
    with env.app.app_context(), db.database.connection_context():
        return tasks.enqueue(kind, payload, tenant=env.tenant(slug) if slug else None, **kwargs)


def task_row(task_id: int) -> Task:
    with db.database.connection_context():
        return Task.get_by_id(task_id)


def all_tasks() -> list[Task]:
    with db.database.connection_context():
        return list(Task.select().order_by(Task.id))


def receipts(env, slug: str, kind: str) -> list[str]:
    from crm_sample.models import SampleReceipt

    with db.database.connection_context(), tenant_context(env.tenant(slug)):
        return [r.detail for r in SampleReceipt.select().where(SampleReceipt.kind == kind).order_by(SampleReceipt.id)]


def run_one(worker: Worker) -> Task | None:
    with db.database.connection_context():
        return worker.run_one()


def claim(worker: Worker) -> Task | None:
    with db.database.connection_context():
        return worker.claim()


def expire_lease(task_id: int) -> None:
    """What the clock does to a dead worker's claim, without waiting for it."""
    with db.database.connection_context():
        Task.update(locked_until=utcnow() - dt.timedelta(seconds=1)).where(Task.id == task_id).execute()


def crm(env, *args: str) -> Any:
    from crmcore.cli import cli

    return CliRunner().invoke(cli, ["--config", str(env.config_dir), *args])


def with_tasks_settings(env, **changes: Any) -> None:
    """``write_instance`` replaces the nested ``tasks`` table wholesale: keep the other keys."""
    env.write_instance(tasks={**env.instance["tasks"], **changes})


# ---------------------------------------------------------------- enqueue and run


def test_task_runs_in_its_tenant(sample_env):
    task = enqueue(sample_env, "sample.record", {"detail": "one"})
    assert task.status == "queued" and task.attempts == 0
    assert task.tenant_id == sample_env.tenant("alpha").id

    ran = run_one(Worker(sample_env.crm, worker_id="w1"))
    assert ran is not None and ran.id == task.id
    assert ran.status == "done" and ran.attempts == 1
    assert ran.finished_at is not None and ran.locked_by is None and ran.last_error is None
    assert receipts(sample_env, "alpha", "task") == ["one"]
    assert receipts(sample_env, "beta", "task") == []
    assert run_one(Worker(sample_env.crm, worker_id="w1")) is None  # nothing left


def test_enqueue_inside_a_rolled_back_transaction_leaves_no_task(sample_env):
    """The outbox: a task enqueued with other work commits (or not) with it."""
    alpha = sample_env.tenant("alpha")
    with sample_env.app.app_context(), db.database.connection_context():
        with pytest.raises(RuntimeError):
            with db.atomic():
                tasks.enqueue("sample.record", {"detail": "never"}, tenant=alpha)
                raise RuntimeError("the surrounding work failed")
        with tenant_context(alpha):
            with db.atomic():
                kept = tasks.enqueue("sample.record", {"detail": "kept"})
    assert [(t.id, t.kind) for t in all_tasks()] == [(kept.id, "sample.record")]
    assert kept.tenant_id == alpha.id  # the current tenant by default


def test_idempotency_key_gives_one_task(sample_env):
    first = enqueue(sample_env, "sample.record", {"detail": "once"}, idempotency_key="welcome-42")
    second = enqueue(sample_env, "sample.record", {"detail": "twice"}, idempotency_key="welcome-42")
    assert second.id == first.id
    assert len(all_tasks()) == 1

    worker = Worker(sample_env.crm, worker_id="w1")
    assert run_one(worker).status == "done"
    assert run_one(worker) is None
    # Enqueuing again after it ran still does not add (or rerun) anything.
    assert enqueue(sample_env, "sample.record", {"detail": "again"}, idempotency_key="welcome-42").id == first.id
    assert run_one(worker) is None
    assert receipts(sample_env, "alpha", "task") == ["once"]


def test_idempotency_key_of_another_tenant_is_not_handed_out(sample_env):
    """Keys are global in the table; a key used by one tenant must not return that
    tenant's task (its payload) to another tenant."""
    enqueue(sample_env, "sample.record", {"detail": "alpha's secret"}, idempotency_key="invoice-1")
    with pytest.raises(tasks.IdempotencyConflict) as info:
        enqueue(sample_env, "sample.record", {"detail": "beta"}, slug="beta", idempotency_key="invoice-1")
    assert "alpha" not in str(info.value)
    with pytest.raises(tasks.IdempotencyConflict):
        enqueue(sample_env, "sample.fail", {}, idempotency_key="invoice-1")  # same tenant, other kind
    assert len(all_tasks()) == 1


def test_run_at_in_the_future_waits_until_due(sample_env):
    worker = Worker(sample_env.crm, worker_id="w1")
    later = enqueue(sample_env, "sample.record", {"detail": "later"}, run_at=utcnow() + dt.timedelta(seconds=0.5))
    # An aware datetime means the same instant (stored as naive UTC like every timestamp).
    aware = enqueue(sample_env, "sample.record", {"detail": "next hour"}, run_at=dt.datetime.now(dt.timezone(dt.timedelta(hours=5))) + dt.timedelta(hours=1))
    assert task_row(aware.id).next_run_at.tzinfo is None
    assert run_one(worker) is None
    assert task_row(later.id).status == "queued"

    ran = wait_for(lambda: run_one(worker), timeout=3, what="the delayed task to become due")
    assert ran.id == later.id and ran.status == "done"
    assert receipts(sample_env, "alpha", "task") == ["later"]
    assert run_one(worker) is None  # the other one is an hour away
    assert task_row(aware.id).status == "queued"


def test_failing_task_backs_off_then_dies_and_is_replayed_from_the_cli(sample_env):
    worker = Worker(sample_env.crm, worker_id="w1")
    task = enqueue(sample_env, "sample.fail")
    assert task.max_attempts == 2  # the handler's own limit wins over the instance default

    before = utcnow()
    first = run_one(worker)
    assert first.status == "queued" and first.attempts == 1
    assert "RuntimeError: this task always fails" in first.last_error
    assert first.next_run_at > before  # backoff: not immediately due again
    assert first.locked_by is None

    second = wait_for(lambda: run_one(worker), timeout=3, what="the retry to become due")
    assert second.id == task.id
    assert second.status == "dead" and second.attempts == 2 and second.finished_at is not None
    assert "this task always fails" in second.last_error
    assert run_one(worker) is None  # dead tasks stay dead

    listed = crm(sample_env, "tasks", "list", "--status", "dead")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith(f"{task.id}\t"))
    assert "dead" in row and "sample.fail" in row and "attempts 2/2" in row and "this task always fails" in row
    assert "no tasks with status queued" in crm(sample_env, "tasks", "list", "--status", "queued").output

    missing = crm(sample_env, "tasks", "retry")
    assert missing.exit_code != 0
    assert "give a TASK_ID or --all-dead" in missing.output

    retried = crm(sample_env, "tasks", "retry", str(task.id))
    assert retried.exit_code == 0, retried.output
    assert "1 task(s) queued again" in retried.output
    again = task_row(task.id)
    assert again.status == "queued" and again.attempts == 0 and again.finished_at is None

    not_dead = crm(sample_env, "tasks", "retry", str(task.id))  # queued now, not dead
    assert not_dead.exit_code != 0
    assert f"task {task.id} does not exist or is not dead" in not_dead.output
    assert crm(sample_env, "tasks", "retry", "999999").exit_code != 0

    # Replayed: it runs (and fails) again from attempt 1, then dies again.
    assert run_one(worker).attempts == 1
    assert wait_for(lambda: run_one(worker), timeout=3, what="the second retry").status == "dead"
    everything = crm(sample_env, "tasks", "retry", "--all-dead")
    assert everything.exit_code == 0 and "1 task(s) queued again" in everything.output


def test_backoff_grows_exponentially_up_to_the_cap():
    for attempts, expected in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (10, 60.0)]:
        delay = tasks.backoff_seconds(attempts, base=2.0, cap=60.0)
        assert expected * 0.8 <= delay <= expected * 1.2, (attempts, delay)
    assert tasks.backoff_seconds(50, base=2.0, cap=60.0) <= 60.0 * 1.2


def test_task_of_tenant_without_the_plugin_is_cancelled(sample_env):
    task = enqueue(sample_env, "sample.record", {"detail": "beta"}, slug="beta")
    ran = run_one(Worker(sample_env.crm, worker_id="w1"))
    assert ran.id == task.id
    assert ran.status == "cancelled" and ran.locked_by is None and ran.finished_at is not None
    assert "not enabled for tenant 'beta'" in ran.last_error
    assert receipts(sample_env, "beta", "task") == []
    assert receipts(sample_env, "alpha", "task") == []


def test_unknown_kind_is_refused_at_enqueue(sample_env):
    with pytest.raises(UnknownTaskKind, match="sample.nope"):
        enqueue(sample_env, "sample.nope", {"x": 1})
    assert all_tasks() == []


# ---------------------------------------------------------------- crashes, leases, concurrency


def env_with_lease(crm_env, lease_seconds: float):
    """Like sample_env, with a short task lease, configured before the app exists."""
    with_tasks_settings(crm_env, lease_seconds=lease_seconds)
    crm_env.write_tenant("alpha", plugins=["sample"], settings={"sample": {"greeting": "Hi alpha"}})
    crm_env.write_tenant("beta")
    crm_env.create_app()
    assert crm_env.crm.config.instance.tasks["lease_seconds"] == lease_seconds
    assert crm_env.crm.config.instance.tasks["poll_seconds"] == 0.05  # the other keys kept
    return crm_env


@pytest.fixture
def short_lease_env(crm_env, sample_plugin_path):
    """A 1.5 s lease: a dead worker's task is taken over fast."""
    return env_with_lease(crm_env, 1.5)


@pytest.fixture
def tiny_lease_env(crm_env, sample_plugin_path):
    return env_with_lease(crm_env, 0.3)


def start_worker(env, sample_plugin_path: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "crmcore.cli", "--config", str(env.config_dir), "worker", "--no-scheduler"]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=subprocess_env(sample_plugin_path), stdout=out, stderr=subprocess.STDOUT)


def log_of(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def test_worker_killed_mid_task_completes_it_exactly_once_after_restart(short_lease_env, sample_plugin_path, tmp_path):
    env = short_lease_env
    started = tmp_path / "started"
    task = enqueue(env, "sample.slow", {"started_file": str(started)})
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
    procs: list[subprocess.Popen] = []
    try:
        first = start_worker(env, sample_plugin_path, logs[0])
        procs.append(first)
        # (read the content: the file exists a moment before its pid is written)
        wait_for(lambda: (started.exists() and started.read_text()) or first.poll() is not None, timeout=15, what="the first worker to start the task")
        assert first.poll() is None, log_of(logs[0])
        assert started.read_text() == str(first.pid)  # the handler runs in the worker process

        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=5) == -signal.SIGKILL
        # The receipt of the killed attempt died with its transaction; the task is still
        # claimed by the dead worker until its lease runs out.
        assert receipts(env, "alpha", "slow") == []
        killed = task_row(task.id)
        assert killed.status == "running" and killed.attempts == 1

        second = start_worker(env, sample_plugin_path, logs[1])
        procs.append(second)
        done = wait_for(lambda: task_row(task.id).status == "done" or second.poll() is not None, timeout=20, what="the second worker to finish the task")
        assert done and second.poll() is None, log_of(logs[1])
        final = task_row(task.id)
        assert final.status == "done" and final.attempts == 2
        assert receipts(env, "alpha", "slow") == [str(task.id)]

        # SIGTERM lets the task in hand finish, then the worker exits cleanly.
        napping = tmp_path / "napping"
        nap = enqueue(env, "sample.nap", {"started_file": str(napping), "seconds": 0.7})
        wait_for(napping.exists, timeout=10, what="the second worker to start the nap task")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=10) == 0, log_of(logs[1])
        assert task_row(nap.id).status == "done"
        assert receipts(env, "alpha", "nap") == [str(nap.id)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)


@pytest.mark.parametrize("kind", ["sample.record", "sample.tally"])
def test_two_workers_run_each_task_exactly_once(sample_env, kind):
    """sample.tally reads before it writes, which on SQLite needs the handler's
    transaction to take the write lock up front (else: spurious 'database is locked')."""
    for i in range(40):
        enqueue(sample_env, kind, {"detail": f"n{i}"})
    workers = [Worker(sample_env.crm, worker_id=f"w{i}") for i in range(2)]
    threads = [threading.Thread(target=w.run_forever, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(t.status not in ("queued", "running") for t in all_tasks()), timeout=20, what="the queue to drain", interval=0.05)
    finally:
        for w in workers:
            w.stop()
        for thread in threads:
            thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    rows = all_tasks()
    assert [(t.status, t.attempts, t.last_error) for t in rows] == [("done", 1, None)] * 40
    receipt_kind = {"sample.record": "task", "sample.tally": "tally"}[kind]
    details = [d.split("|")[0] for d in receipts(sample_env, "alpha", receipt_kind)]
    assert len(details) == 40 and set(details) == {f"n{i}" for i in range(40)}


def test_postgres_claim_skips_rows_locked_by_another_worker(sample_env):
    if not db.is_postgres():
        pytest.skip("FOR UPDATE SKIP LOCKED is the PostgreSQL claim")
    import psycopg2

    first = enqueue(sample_env, "sample.record", {"detail": "first"})
    second = enqueue(sample_env, "sample.record", {"detail": "second"})
    # Another worker in the middle of claiming the first task: its row is locked.
    conn = psycopg2.connect(sample_env.database_url.replace("?search_path=", "?options=-csearch_path%3D"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM %s WHERE id = %%s FOR UPDATE" % Task._meta.table_name, (first.id,))
            started = time.monotonic()
            claimed = claim(Worker(sample_env.crm, worker_id="w1"))
            assert time.monotonic() - started < 2  # not blocked behind the lock
            assert claimed.id == second.id
    finally:
        conn.rollback()
        conn.close()
    assert claim(Worker(sample_env.crm, worker_id="w2")).id == first.id


def test_worker_that_lost_its_lease_commits_nothing(sample_env, tmp_path):
    commit_file = tmp_path / "committed"
    task = enqueue(sample_env, "sample.after_commit", {"commit_file": str(commit_file)})
    a, b = Worker(sample_env.crm, worker_id="A"), Worker(sample_env.crm, worker_id="B")
    claimed_by_a = claim(a)
    assert claimed_by_a.id == task.id and claimed_by_a.locked_by == "A"
    assert claim(b) is None  # A's lease is still good
    expire_lease(task.id)  # A stalls past its lease...
    claimed_by_b = claim(b)  # ...and B takes the task over
    assert claimed_by_b.id == task.id and claimed_by_b.locked_by == "B" and claimed_by_b.attempts == 2

    with db.database.connection_context():
        a.execute(claimed_by_a)  # A wakes up and finishes its (stale) attempt
    assert receipts(sample_env, "alpha", "after_commit") == []
    assert not commit_file.exists()  # no after-commit effect of a rolled-back attempt
    row = task_row(task.id)
    assert row.status == "running" and row.locked_by == "B"

    with db.database.connection_context():
        b.execute(claimed_by_b)
    assert receipts(sample_env, "alpha", "after_commit") == [str(task.id)]
    assert commit_file.read_text() == f"{task.id}\n"
    assert task_row(task.id).status == "done"


def test_live_worker_keeps_its_transactional_task_past_the_lease(tiny_lease_env, tmp_path):
    """The lease is for dead workers: while a transactional handler runs, its task row is
    held (PostgreSQL row lock / SQLite write lock), so no other worker runs it again."""
    env = tiny_lease_env
    started = tmp_path / "started"
    task = enqueue(env, "sample.nap", {"started_file": str(started), "seconds": 0.8})
    a, b = Worker(env.crm, worker_id="A"), Worker(env.crm, worker_id="B")
    thread = threading.Thread(target=run_one, args=(a,), daemon=True)
    thread.start()
    try:
        wait_for(started.exists, timeout=5, what="worker A to start the task")
        until = time.monotonic() + 0.6  # well past A's 0.3 s lease, before its nap ends
        while time.monotonic() < until:
            assert claim(b) is None
            time.sleep(0.05)
    finally:
        thread.join(timeout=10)
    assert not thread.is_alive()
    row = task_row(task.id)
    assert (row.status, row.attempts) == ("done", 1)
    assert receipts(env, "alpha", "nap") == [str(task.id)]


def test_live_worker_renews_the_lease_of_its_non_transactional_task(tiny_lease_env, tmp_path):
    """A handler outside a transaction holds no row: the worker renews the lease while it
    runs, so a short lease (a dead worker's task retried soon) never hands a live
    worker's task to another."""
    env = tiny_lease_env
    started = tmp_path / "started"
    task = enqueue(env, "sample.nap_outside", {"started_file": str(started), "seconds": 1.0})
    a, b = Worker(env.crm, worker_id="A"), Worker(env.crm, worker_id="B")
    thread = threading.Thread(target=run_one, args=(a,), daemon=True)
    thread.start()
    try:
        wait_for(started.exists, timeout=5, what="worker A to start the task")
        until = time.monotonic() + 0.8  # well past A's 0.3 s lease, before its nap ends
        while time.monotonic() < until:
            assert claim(b) is None
            time.sleep(0.05)
    finally:
        thread.join(timeout=10)
    row = task_row(task.id)
    assert (row.status, row.attempts) == ("done", 1)
    assert receipts(env, "alpha", "nap") == [str(task.id)]


def test_lost_lease_on_a_failing_task_does_not_touch_the_new_owner(sample_env):
    task = enqueue(sample_env, "sample.fail")  # max_attempts 2
    a, b = Worker(sample_env.crm, worker_id="A"), Worker(sample_env.crm, worker_id="B")
    stale = claim(a)
    expire_lease(task.id)
    assert claim(b).locked_by == "B"
    with db.database.connection_context():
        a.execute(stale)  # fails, but it is not A's task any more: nothing recorded
    row = task_row(task.id)
    assert row.status == "running" and row.locked_by == "B" and row.last_error is None


def test_task_whose_worker_died_on_the_last_attempt_is_dead_not_rerun(sample_env):
    """A task that kills its worker (out of memory, say) must not loop for ever."""
    task = enqueue(sample_env, "sample.record", {"detail": "poison"}, max_attempts=1)
    assert claim(Worker(sample_env.crm, worker_id="A")).attempts == 1
    expire_lease(task.id)  # A died
    nothing = run_one(Worker(sample_env.crm, worker_id="B"))
    assert nothing is None
    row = task_row(task.id)
    assert row.status == "dead" and row.attempts == 1 and row.locked_by is None
    assert "lease" in row.last_error
    assert receipts(sample_env, "alpha", "task") == []
    assert crm(sample_env, "tasks", "retry", str(task.id)).exit_code == 0
    assert run_one(Worker(sample_env.crm, worker_id="C")).status == "done"
    assert receipts(sample_env, "alpha", "task") == ["poison"]


def test_worker_ids_fit_the_lock_column(sample_env):
    limit = Task.locked_by.max_length
    assert len(Worker(sample_env.crm).id) <= limit
    with pytest.raises(ValueError):
        Worker(sample_env.crm, worker_id="x" * (limit + 1))


# ---------------------------------------------------------------- scheduler lease


def test_only_one_scheduler_leads_and_another_takes_over_when_its_lease_expires(sample_env):
    first = Scheduler(sample_env.crm, holder="one", lease_seconds=0.8)
    second = Scheduler(sample_env.crm, holder="two", lease_seconds=0.8)
    assert first.is_leader()
    assert not second.is_leader()
    assert first.is_leader()  # renewing its own lease

    # Both processes' timers fire; only the leader runs the job, once per enabled tenant.
    second.fire("sample:tick")
    first.fire("sample:tick")
    assert receipts(sample_env, "alpha", "job") == ["alpha"]
    assert receipts(sample_env, "beta", "job") == []

    # The leader stops renewing (it died): after its lease expires the other one leads.
    wait_for(second.is_leader, timeout=5, what="the second scheduler to take over")
    assert not first.is_leader()
    first.fire("sample:tick")
    assert receipts(sample_env, "alpha", "job") == ["alpha"]
    second.fire("sample:tick")
    assert receipts(sample_env, "alpha", "job") == ["alpha", "alpha"]

    # A clean shutdown hands the lease over at once.
    second.shutdown()
    assert first.is_leader()


def test_acquire_lease_is_exclusive_per_name(sample_env):
    with db.database.connection_context():
        assert acquire_lease("x", "p1", 30)
        assert not acquire_lease("x", "p2", 30)
        assert acquire_lease("y", "p2", 30)
        assert acquire_lease("x", "p1", 30)


def test_a_scheduler_that_takes_the_lease_over_runs_the_firing_it_skipped(sample_env):
    """A firing skipped because another process held the lease runs as soon as this one
    takes the lease over (the holder died), not at the job's next turn (issue 19)."""
    first = Scheduler(sample_env.crm, holder="one", lease_seconds=0.6)
    second = Scheduler(sample_env.crm, holder="two", lease_seconds=0.6)
    second._aps.start()  # running, but with none of the jobs' own timers: only catch-ups
    try:
        assert first.is_leader()
        second.fire("sample:tick")  # skipped: "one" leads ... and then dies before its turn
        assert receipts(sample_env, "alpha", "job") == []
        wait_for(second.is_leader, timeout=5, what="the second scheduler to take over")
        wait_for(lambda: receipts(sample_env, "alpha", "job") == ["alpha"], timeout=5, what="the skipped firing to run")
        time.sleep(0.3)
        assert receipts(sample_env, "alpha", "job") == ["alpha"]  # once
    finally:
        second.shutdown()


def test_sigterm_of_crm_run_hands_the_scheduler_lease_back(crm_env, sample_plugin_path, tmp_path):
    """``crm run`` stopped by SIGTERM shuts down as with Ctrl-C: the scheduler's lease is
    released at once, so another process's scheduler leads without waiting for it."""
    import socket as sockets

    from crmcore.models import Lease

    crm_env.write_tenant("alpha", plugins=["sample"])
    crm_env.create_app()
    with sockets.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "run.log"
    cmd = [sys.executable, "-m", "crmcore.cli", "--config", str(crm_env.config_dir), "run", "--port", str(port)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=subprocess_env(sample_plugin_path), stdout=out, stderr=subprocess.STDOUT)
    try:
        def lease_holder() -> str | None:
            with db.database.connection_context():
                row = Lease.get_or_none(Lease.name == "scheduler")
                return row.holder if row else None

        holder = wait_for(lease_holder, timeout=20, what="crm run's scheduler to take the lease")
        assert holder.startswith(f"{proc.pid}:")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log_of(log)
        assert lease_holder() is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
