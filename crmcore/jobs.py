"""Scheduled jobs (APScheduler 3) and the background runner of ``crm worker``/``crm run``.

Plugins declare jobs with ``crm_scheduled_jobs``. Each firing runs the job once for every
tenant that has the plugin on *at that moment* (so a config reload applies at once),
each tenant in its own app context, an exception logged with the plugin's name.

One scheduler per deployment: every worker process may start a scheduler, but a job
only runs in the process holding the ``scheduler`` lease (a row in ``crm_leases`` that
the holder renews and that another process takes over once it expires). APScheduler 3
has no supported shared job store across processes, and jobs come from code, so each
scheduler keeps its jobs in memory and the lease decides who acts.

A takeover loses no firing: a process that skipped a firing because another held the
lease remembers it, and when it takes the lease over (the holder died: its lease
expired, ``lease_seconds`` 20 by default), it runs the firings it skipped in the last
lease period and a half at once, instead of waiting for the job's next turn (a 5-minute
job stopped for 6 minutes after a restart, issue 19). A firing the old holder did run
may so run twice; jobs are written to be idempotent (sweeps, polls).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler

from crmcore import db
from crmcore.contrib import ScheduledJob
from crmcore.db import utcnow
from crmcore.entities.context import Context, acting
from crmcore.models import Lease

if TYPE_CHECKING:
    from crmcore.app import CRM

log = logging.getLogger("crmcore.jobs")

LEASE_NAME = "scheduler"
#: How long the scheduler lease lasts unless renewed (renewed every third of it): after
#: a holder dies, another process's scheduler leads within this many seconds.
LEASE_SECONDS = 20.0


def acquire_lease(name: str, holder: str, ttl: float) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False if someone else holds it."""
    now = utcnow()
    expires = now + dt.timedelta(seconds=ttl)
    with db.atomic():
        Lease.insert(name=name, holder=holder, expires_at=expires).on_conflict_ignore().execute()
        taken = (
            Lease.update(holder=holder, expires_at=expires)
            .where((Lease.name == name) & ((Lease.holder == holder) | (Lease.expires_at < now)))
            .execute()
        )
    return bool(taken)


def release_lease(name: str, holder: str) -> None:
    Lease.delete().where((Lease.name == name) & (Lease.holder == holder)).execute()


class Scheduler:
    """The APScheduler of one process, running plugin jobs per tenant under the lease."""

    def __init__(self, crm: "CRM", holder: str, lease_seconds: float = LEASE_SECONDS):
        self.crm = crm
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.leading = False
        #: job id -> when (time.monotonic) this process skipped a firing of it
        self.skipped: dict[str, float] = {}
        self.jobs: dict[str, tuple[str, ScheduledJob]] = {}
        self._aps = BackgroundScheduler(timezone=dt.timezone.utc)
        self._lock = threading.Lock()
        for plugin, jobs in crm.host.call_startup("crm_scheduled_jobs"):
            for job in jobs:
                if job.id in self.jobs:
                    raise ValueError(f"scheduled job id {job.id!r} declared twice ({self.jobs[job.id][0]} and {plugin})")
                self.jobs[job.id] = (plugin, job)

    def start(self) -> None:
        for job_id, (plugin, job) in self.jobs.items():
            self._aps.add_job(
                self.fire,
                trigger=job.trigger,
                args=[job_id],
                id=job_id,
                name=f"{plugin}:{job.func.__name__}",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=60,
                **job.trigger_args,
            )
        # Renew the lease well before it expires so leadership does not flap.
        self._aps.add_job(self.is_leader, "interval", seconds=max(1.0, self.lease_seconds / 3), id="crm:lease", replace_existing=True)
        self._aps.start()
        log.info("scheduler started with %d job(s) (holder %s)", len(self.jobs), self.holder)

    def shutdown(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=True)
        try:
            with db.using(self.crm.database), db.database.connection_context():
                release_lease(LEASE_NAME, self.holder)
        except Exception:  # the database may already be gone at exit
            log.debug("could not release the scheduler lease", exc_info=True)

    def is_leader(self, firing: str | None = None) -> bool:
        """Take or renew the lease; on a takeover, run the firings skipped lately (but
        ``firing``, which the caller runs itself)."""
        # APScheduler's threads are outside any app context: bind this app's database.
        with self._lock:
            with db.using(self.crm.database), db.database.connection_context():
                leading = acquire_lease(LEASE_NAME, self.holder, self.lease_seconds)
            took_over, self.leading = leading and not self.leading, leading
            missed = self._missed(exclude=firing) if took_over else []
        for job_id in missed:
            log.info("scheduler %s took the lease over: running the skipped firing of %s now", self.holder, job_id)
            if self._aps.running:
                self._aps.add_job(self.fire, args=[job_id], id=f"{job_id}:catch-up", replace_existing=True)
        return leading

    def _missed(self, exclude: str | None) -> list[str]:
        recent = time.monotonic() - self.lease_seconds * 1.5
        missed = [job_id for job_id, at in self.skipped.items() if at >= recent and job_id != exclude]
        self.skipped.clear()
        return missed

    def fire(self, job_id: str) -> None:
        """What APScheduler calls: run the job for each enabled tenant, if we lead."""
        if not self.is_leader(firing=job_id):
            self.skipped[job_id] = time.monotonic()
            log.debug("job %s skipped: another process holds the scheduler lease", job_id)
            return
        self.run_job(job_id)

    def run_job(self, job_id: str) -> list[str]:
        """Run a job now for every tenant that has its plugin on; return their slugs."""
        plugin, job = self.jobs[job_id]
        ran: list[str] = []
        with self.crm.app.app_context(), db.database.connection_context():
            self.crm.config_store.maybe_reload()
            for slug, tenant_config in sorted(self.crm.config.tenants.items()):
                if plugin not in tenant_config.plugins and not self.crm.host.infos[plugin].always_on:
                    continue
                tenant = self.crm.tenant(slug)
                if tenant is None:
                    continue
                try:
                    # The domain's context: audited as "scheduler", the tenant's settings.
                    with acting(Context(tenant=tenant, actor="scheduler", settings=self.crm.settings, plugins=self.crm)):
                        job.func(tenant)
                    ran.append(slug)
                except Exception:
                    log.exception("plugin %r: job %s failed for tenant %r", plugin, job_id, slug)
        return ran


def job_summary(scheduler: Scheduler) -> list[dict[str, Any]]:
    return [
        {"id": job_id, "plugin": plugin, "trigger": job.trigger, "args": job.trigger_args}
        for job_id, (plugin, job) in sorted(scheduler.jobs.items())
    ]
