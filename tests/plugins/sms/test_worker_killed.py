"""A real worker process SIGKILLed while its POST to the provider is in flight (not yet
taken): the text is neither lost nor sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from crm_plugins.channels.models import Message
from tests.conftest import subprocess_env
from tests.plugins.channels.conftest import Api, drain, in_tenant, token
from tests.plugins.sms.conftest import AUTH_TOKEN, make_lead, sms_settings


@pytest.fixture
def env(crm_env, provider, monkeypatch):
    monkeypatch.setenv("SMS_TEST_AUTH_TOKEN", AUTH_TOKEN)
    crm_env.write_instance(tasks={**crm_env.instance["tasks"], "lease_seconds": 1.0})
    crm_env.write_tenant("acme", plugins=["channels", "sms"], settings={"sms": sms_settings(provider)})
    crm_env.create_app()
    return crm_env


def test_a_worker_killed_mid_post_neither_loses_nor_duplicates(env, provider, tmp_path):
    admin = Api(env, "acme", token(env))
    lead = make_lead(env)
    provider.hold = threading.Event()
    queued = admin("POST", "/messages", json={"channel": "sms", "entity": "lead", "record_id": lead.id, "body": "Killed"}, status=201)
    log = tmp_path / "worker.log"
    cmd = [sys.executable, "-m", "crmcore.cli", "--config", str(env.config_dir), "worker", "--no-scheduler"]
    hold = provider.hold
    with open(log, "ab") as out:
        worker = subprocess.Popen(cmd, env={**subprocess_env(), "SMS_TEST_AUTH_TOKEN": AUTH_TOKEN}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not provider.holding.is_set() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert provider.holding.is_set() and worker.poll() is None, log.read_text()[-3000:]
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=5) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=5)
    hold.set()
    assert provider.sent == []
    with in_tenant(env):
        assert Message.get_by_id(queued["id"]).status == "queued"
    time.sleep(1.1)  # the dead worker's lease runs out
    drain(env)
    assert [f["Body"] for f in provider.sent] == ["Killed"]
    assert admin("GET", f"/messages/{queued['id']}")["status"] == "sent"
    drain(env)
    assert len(provider.sent) == 1
