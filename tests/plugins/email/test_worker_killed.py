"""A real worker process SIGKILLed in the middle of an SMTP transaction: the message is
neither lost nor sent twice, and the retry carries the Message-ID fixed at queue time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from crm_plugins.channels.models import Message
from crmcore.models import Task
from tests.conftest import subprocess_env
from tests.plugins.channels.conftest import Api, drain, email_settings, in_tenant, make_lead, token


@pytest.fixture
def env(crm_env, smtp):
    crm_env.write_instance(tasks={**crm_env.instance["tasks"], "lease_seconds": 1.0})
    crm_env.write_tenant("acme", plugins=["channels", "email"], settings={"email": email_settings(smtp.port)})
    crm_env.create_app()
    return crm_env


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_worker_killed_mid_send_neither_loses_nor_duplicates(env, smtp, tmp_path):
    admin = Api(env, "acme", token(env))
    lead = make_lead(env, email="ada@example.com")
    smtp.hold = threading.Event()  # RCPT waits: the worker is inside the SMTP transaction
    queued = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "subject": "Killed", "body": "x"}, status=201)
    log = tmp_path / "worker.log"
    cmd = [sys.executable, "-m", "crmcore.cli", "--config", str(env.config_dir), "worker", "--no-scheduler"]
    with open(log, "ab") as out:
        worker = subprocess.Popen(cmd, env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: smtp.holding.is_set() or worker.poll() is not None, 20, "the worker to start sending")
        assert worker.poll() is None, log.read_text()[-3000:]
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=5) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=5)
    smtp.hold.set()
    assert smtp.accepted == []
    with in_tenant(env):
        assert Message.get_by_id(queued["id"]).status == "queued"
        assert Task.select().where(Task.status == "running").count() == 1  # the dead worker's lease
    time.sleep(1.1)  # the lease runs out; another worker takes the task over
    drain(env)
    assert len(smtp.accepted) == 1 and smtp.accepted[0]["Message-ID"] == queued["message_id"]
    answer = admin("GET", f"/messages/{queued['id']}")
    assert answer["status"] == "sent" and answer["attempts"] == 2
    drain(env)  # nothing left to run: no second copy
    assert len(smtp.accepted) == 1
