"""The durable task queue: work that must not be lost, in the database.

``enqueue(kind, payload, ...)`` inserts a row in ``crm_task_queue``; a worker claims due tasks
one at a time (``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several workers can run;
``BEGIN IMMEDIATE`` on SQLite), runs the handler declared for the kind through the
``crm_task_handlers`` hook, and marks the task done. A failure is retried with exponential
backoff; after ``max_attempts`` the task is ``dead``: listed by ``crm tasks list`` and
replayable with ``crm tasks retry``.

Exactly once: a claim is a lease (``locked_by``/``locked_until``). A transactional
handler runs in the same transaction that marks its task done, and that mark only
succeeds while the lease is still this worker's, so if the worker dies (even SIGKILL)
midway nothing of the attempt is committed, and after the lease expires another worker
runs the task again from the start.

That transaction begins by confirming (and renewing) the lease with a write to the task
row, so a worker that lost its lease runs nothing, and while the handler runs the task
row is locked (PostgreSQL: other claims skip it; SQLite: the write lock is taken up front,
so a handler that reads before it writes cannot fail with "database is locked" under
concurrent workers). A task whose worker vanished on its last allowed attempt is marked
dead, not run again, so a task that kills its worker cannot loop for ever.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import random
import socket
import threading
import traceback
import uuid
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import peewee

from crmcore import db
from crmcore.db import Tenant, tenant_context, utcnow
from crmcore.entities.context import Context, acting
from crmcore.models import Task

if TYPE_CHECKING:
    from crmcore.app import CRM

log = logging.getLogger("crmcore.tasks")

STATUSES = ("queued", "running", "done", "dead", "cancelled")


class UnknownTaskKind(ValueError):
    pass


class IdempotencyConflict(ValueError):
    """The idempotency key is already used by a task of another kind or tenant."""


class _LeaseLost(Exception):
    """This worker's claim on a task went to another worker: undo the attempt."""


def _as_utc_naive(value: dt.datetime) -> dt.datetime:
    """Timestamps are stored as naive UTC; an aware datetime is converted, not mislabelled."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def enqueue(
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    tenant: Tenant | None = None,
    idempotency_key: str | None = None,
    run_at: dt.datetime | None = None,
    max_attempts: int | None = None,
) -> Task:
    """Add a task; with an ``idempotency_key`` already used, return the existing task.

    ``tenant`` defaults to the current tenant. Inside :func:`crmcore.db.atomic` the task
    commits (or not) with the surrounding work: the outbox pattern.
    """
    from crmcore.app import crm_state

    state = crm_state()
    handler = state.task_handlers.get(kind)
    if handler is None:
        raise UnknownTaskKind(f"no handler for task kind {kind!r} (declare it with crm_task_handlers)")
    tenant = tenant if tenant is not None else db.current_tenant()
    settings = state.config.instance.tasks
    row = {
        "tenant": tenant.id if tenant is not None else None,
        "kind": kind,
        "payload": json.dumps(dict(payload or {}), default=str),
        "idempotency_key": idempotency_key,
        "next_run_at": _as_utc_naive(run_at) if run_at is not None else utcnow(),
        "max_attempts": max_attempts or handler.max_attempts or settings["max_attempts"],
    }
    if idempotency_key is None:
        task = Task.create(**row)
    else:
        query = Task.insert(**row).on_conflict_ignore()
        query.execute()
        task = Task.get(Task.idempotency_key == idempotency_key)
        if task.tenant_id != row["tenant"] or task.kind != kind:
            # Never hand out another tenant's task (nor one of another kind) for a key.
            raise IdempotencyConflict(f"idempotency key {idempotency_key!r} is already used by another task")
    # Inside a transaction the task is invisible to workers until it commits.
    db.on_commit(state.notify_worker)
    return task


def enqueue_many(
    kind: str,
    items: list[tuple[Mapping[str, Any], str]],
    *,
    tenant: Tenant | None = None,
    run_at: dt.datetime | None = None,
) -> int:
    """Add many tasks of one kind at once: ``items`` are ``(payload, idempotency_key)``;
    a key already used adds nothing (as :func:`enqueue`, without handing back the task).
    One INSERT per 500 tasks, for sweeps that queue thousands (an enqueue each costs a
    round trip or two per task). Inside :func:`crmcore.db.atomic` the tasks commit with
    the surrounding work. Returns how many were added."""
    from crmcore.app import crm_state

    state = crm_state()
    handler = state.task_handlers.get(kind)
    if handler is None:
        raise UnknownTaskKind(f"no handler for task kind {kind!r} (declare it with crm_task_handlers)")
    tenant = tenant if tenant is not None else db.current_tenant()
    attempts = handler.max_attempts or state.config.instance.tasks["max_attempts"]
    when = _as_utc_naive(run_at) if run_at is not None else utcnow()
    rows = [{"tenant": tenant.id if tenant is not None else None, "kind": kind, "payload": json.dumps(dict(payload or {}), default=str),
             "idempotency_key": key, "next_run_at": when, "max_attempts": attempts} for payload, key in items]
    added = 0
    for start in range(0, len(rows), 500):
        added += len(list(Task.insert_many(rows[start:start + 500]).on_conflict_ignore().returning(Task.id).tuples().execute()))
    if added:
        db.on_commit(state.notify_worker)
    return added


def payload_of(task: Task) -> dict[str, Any]:
    return json.loads(task.payload or "{}")


def retry(task_id: int | None = None, *, all_dead: bool = False) -> int:
    """Put a dead (or cancelled) task, or all dead tasks, back in the queue. Returns the count."""
    if task_id is None and not all_dead:
        raise ValueError("give a task id or all_dead=True")
    now = utcnow()
    query = Task.update(status="queued", attempts=0, next_run_at=now, locked_by=None, locked_until=None, finished_at=None, updated_at=now)
    if all_dead:
        return query.where(Task.status == "dead").execute()
    return query.where((Task.id == task_id) & (Task.status.in_(["dead", "cancelled"]))).execute()


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base * 2^(attempts-1), at most ``cap``."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay * random.uniform(0.8, 1.2)


class Worker:
    """Claims and runs due tasks. Several may run at once, in one or many processes."""

    def __init__(self, crm: "CRM", worker_id: str | None = None):
        self.crm = crm
        # Host names can be 63+ characters (containers, cloud VMs); the id must fit locked_by.
        self.id = worker_id or f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        limit = Task.locked_by.max_length
        if len(self.id) > limit:
            raise ValueError(f"worker id {self.id!r} is longer than {limit} characters")
        self.stopping = threading.Event()
        self.stopped = threading.Event()

    # -- claiming ----------------------------------------------------------------------

    def claim(self) -> Task | None:
        """Take the next due task (or one whose lease expired), or None.

        A task whose lease expired on its last allowed attempt (its worker died, maybe
        because of the task) is marked dead instead, and the next one is looked at."""
        lease = dt.timedelta(seconds=self.crm.config.instance.tasks["lease_seconds"])
        while True:
            with db.database.atomic("IMMEDIATE") if not db.is_postgres() else db.database.atomic():
                now = utcnow()  # after BEGIN IMMEDIATE, which may have waited for the lock
                due = ((Task.status == "queued") & (Task.next_run_at <= now)) | (
                    (Task.status == "running") & (Task.locked_until < now)
                )
                query = Task.select().where(due).order_by(Task.next_run_at, Task.id).limit(1)
                if db.is_postgres():
                    query = query.for_update(skip_locked=True)
                task = query.first()
                if task is None:
                    return None
                if task.status == "running" and task.attempts >= task.max_attempts:
                    error = (
                        f"worker {task.locked_by} stopped holding its lease during attempt "
                        f"{task.attempts} of {task.max_attempts} (it probably died); not retried"
                    )
                    log.error("task %s (%s): %s", task.id, task.kind, error)
                    previous = f"{task.last_error}\n" if task.last_error else ""
                    Task.update(
                        status="dead", locked_by=None, locked_until=None, finished_at=now, updated_at=now,
                        last_error=(previous + error)[-4000:],
                    ).where(Task.id == task.id).execute()
                    continue
                Task.update(
                    status="running",
                    attempts=Task.attempts + 1,
                    locked_by=self.id,
                    locked_until=now + lease,
                    updated_at=now,
                ).where(Task.id == task.id).execute()
            return Task.get_by_id(task.id)

    # -- running -----------------------------------------------------------------------

    def run_one(self) -> Task | None:
        """Claim and run one task; return it (as it ended) or None when nothing is due."""
        task = self.claim()
        if task is None:
            return None
        self.execute(task)
        return Task.get_by_id(task.id)

    def _hold(self, task: Task) -> bool:
        """Confirm and renew this worker's lease on ``task``; False if it was lost.

        As the first statement of a handler's transaction this also locks the task row
        (PostgreSQL) or takes the write lock (SQLite) until the transaction ends."""
        now = utcnow()
        lease = dt.timedelta(seconds=self.crm.config.instance.tasks["lease_seconds"])
        return bool(
            Task.update(locked_until=now + lease, updated_at=now)
            .where((Task.id == task.id) & (Task.locked_by == self.id) & (Task.status == "running"))
            .execute()
        )

    @contextlib.contextmanager
    def _heartbeat(self, task: Task) -> Iterator[None]:
        """Renew the lease every third of it while a non-transactional handler runs (a
        transactional one holds the task's row, or SQLite's write lock, to its end), so
        a short lease retries a dead worker's task soon without taking a live one's."""
        lease = self.crm.config.instance.tasks["lease_seconds"]
        done = threading.Event()

        def beat() -> None:
            while not done.wait(lease / 3):
                try:
                    with db.using(self.crm.database), db.database.connection_context():
                        if not self._hold(task):
                            return
                except Exception:  # the next beat tries again; the lease is the safety net
                    log.warning("task %s: could not renew the lease of worker %s", task.id, self.id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"lease-{task.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)

    def _mark_done(self, task: Task) -> bool:
        now = utcnow()
        return bool(
            Task.update(status="done", locked_by=None, locked_until=None, finished_at=now, updated_at=now, last_error=None)
            .where((Task.id == task.id) & (Task.locked_by == self.id) & (Task.status == "running"))
            .execute()
        )

    def execute(self, task: Task) -> None:
        """Run a task this worker claimed (see :meth:`claim`) and record how it ended."""
        handler = self.crm.task_handlers.get(task.kind)
        tenant = Tenant.get_or_none(Tenant.id == task.tenant_id) if task.tenant_id else None
        if handler is None:
            self._fail(task, f"no handler for task kind {task.kind!r}", final=True)
            return
        plugin = self.crm.task_plugins[task.kind]
        if tenant is not None and not self.crm.is_enabled(tenant, plugin):
            now = utcnow()
            Task.update(
                status="cancelled", last_error=f"plugin {plugin!r} is not enabled for tenant {tenant.slug!r}",
                locked_by=None, locked_until=None, finished_at=now, updated_at=now,
            ).where((Task.id == task.id) & (Task.locked_by == self.id)).execute()
            return
        # The domain's context: audited as "worker", the tenant's settings.
        with self.crm.app.app_context(), tenant_context(tenant), acting(Context(tenant=tenant, actor="worker", settings=self.crm.settings, plugins=self.crm)):
            try:
                if handler.transactional:
                    # Raising _LeaseLost inside the block rolls the attempt back and drops
                    # its on_commit callbacks (signals, ...) with it.
                    with db.atomic():
                        if not self._hold(task):
                            raise _LeaseLost
                        handler.func(task)
                        if not self._mark_done(task):
                            raise _LeaseLost
                else:
                    if not self._hold(task):
                        raise _LeaseLost
                    with self._heartbeat(task):
                        handler.func(task)
                    if not self._mark_done(task):
                        raise _LeaseLost
            except _LeaseLost:
                log.warning("task %s (%s): worker %s lost its lease to another worker; its attempt is void", task.id, task.kind, self.id)
            except Exception as exc:
                log.exception("task %s (%s, plugin %r) failed on attempt %s", task.id, task.kind, plugin, task.attempts)
                self._fail(task, "".join(traceback.format_exception(exc))[-4000:])

    def _fail(self, task: Task, error: str, final: bool = False) -> None:
        settings = self.crm.config.instance.tasks
        now = utcnow()
        if final or task.attempts >= task.max_attempts:
            fields = {"status": "dead", "finished_at": now}
        else:
            delay = backoff_seconds(task.attempts, settings["backoff_seconds"], settings["backoff_max_seconds"])
            fields = {"status": "queued", "next_run_at": now + dt.timedelta(seconds=delay)}
        Task.update(locked_by=None, locked_until=None, last_error=error, updated_at=now, **fields).where(
            (Task.id == task.id) & (Task.locked_by == self.id)
        ).execute()

    # -- loop --------------------------------------------------------------------------

    def run_forever(self) -> None:
        """Run due tasks until :meth:`stop`; sleeps ``poll_seconds`` when idle (or until
        a task is enqueued in this process)."""
        log.info("worker %s started", self.id)
        try:
            while not self.stopping.is_set():
                try:
                    # This thread is outside any app context: bind the app's database.
                    with db.using(self.crm.database), db.database.connection_context():
                        self.crm.config_store.maybe_reload()
                        ran = self.run_one()
                except peewee.OperationalError:
                    log.exception("worker %s: database error; retrying", self.id)
                    ran = None
                except Exception:
                    # Whatever it was, the loop must go on: a worker thread that dies
                    # leaves a process that looks alive and runs nothing.
                    log.exception("worker %s: unexpected error; retrying", self.id)
                    ran = None
                if ran is None:
                    self.crm.wake.wait(self.crm.config.instance.tasks["poll_seconds"])
                    self.crm.wake.clear()
        finally:
            self.stopped.set()
            log.info("worker %s stopped", self.id)

    def stop(self) -> None:
        """Ask :meth:`run_forever` to return after the task in hand (see :meth:`join`)."""
        self.stopping.set()
        self.crm.wake.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until :meth:`run_forever` has returned; False on timeout."""
        return self.stopped.wait(timeout)
