"""The README's production command, run for real: gunicorn with crmcore.gunicorn_conf
(gevent workers) in a subprocess, one worker, on loopback.

Hundreds of open WebSockets must not stop plain HTTP: under the old command
(``--worker-class gthread --threads 8``) each socket held one of a worker's 8 threads, and
the 9th socket (and every request after it) was never answered. The database is the
test's (SQLite, or PostgreSQL with CRM_TEST_DATABASE_URL: psycopg2 through psycogreen);
the hub is Redis when CRM_TEST_REDIS_URL is set, else the worker's in-memory hub.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import websocket

from tests.conftest import stop_process, subprocess_env

SOCKETS = 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(config_dir: Path, port: int, runtime_dir: Path, *args: str) -> subprocess.Popen:
    env = subprocess_env(PYTHONUNBUFFERED="1", CRM_CONFIG_DIR=str(config_dir), XDG_RUNTIME_DIR=str(runtime_dir))
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:crmcore.gunicorn_conf", "-w", "1", "-b", f"127.0.0.1:{port}", *args, "crmcore.wsgi:app"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gunicorn exited: {proc.stdout.read()}"
        try:
            requests.get(f"http://127.0.0.1:{port}/login", timeout=0.5)
            return proc
        except requests.RequestException:
            time.sleep(0.1)
    output = stop_process(proc)
    raise AssertionError(f"gunicorn did not start:\n{output}")


def _next_data(ws: websocket.WebSocket, timeout: float) -> dict[str, Any]:
    ws.settimeout(timeout)
    while True:
        message = json.loads(ws.recv())
        if message.get("type") != "ping":
            return message


def test_production_command_serves_http_beside_hundreds_of_websockets(crm_env: Any, tmp_path: Path) -> None:
    if os.environ.get("CRM_TEST_REDIS_URL"):
        crm_env.write_instance(redis_url=os.environ["CRM_TEST_REDIS_URL"])
    crm_env.write_tenant("acme", name="Acme Ltd", hostnames=["127.0.0.1"])
    crm_env.create_app()  # migrates the database gunicorn serves
    token = crm_env.token("acme")
    auth = {"Authorization": f"Bearer {token}"}
    port = _free_port()
    runtime_dir = tmp_path / "run"
    runtime_dir.mkdir()
    server = _start_gunicorn(crm_env.config_dir, port, runtime_dir)
    sockets: list[websocket.WebSocket] = []
    try:
        for _ in range(SOCKETS):
            ws = websocket.WebSocket()
            sockets.append(ws)
            ws.connect(f"ws://127.0.0.1:{port}/realtime/ws?topics=list:lead", header=[f"Authorization: {auth['Authorization']}"], timeout=5)
        for ws in sockets:
            assert _next_data(ws, 5) == {"type": "hello", "topics": ["list:lead"]}

        # Plain HTTP keeps answering, quickly, with every socket open.
        timings = []
        with requests.Session() as http:
            for _ in range(20):
                started = time.monotonic()
                answer = http.get(f"http://127.0.0.1:{port}/api/v1/leads?limit=5", headers=auth, timeout=5)
                timings.append(time.monotonic() - started)
                assert answer.status_code == 200, answer.text
            created = http.post(f"http://127.0.0.1:{port}/api/v1/leads", json={"name": "Ada Lovelace"}, headers=auth, timeout=5)
            assert created.status_code == 201, created.text
        assert statistics.median(timings) < 0.5 and max(timings) < 2.0, timings

        # The lead's live event (published by the server after the commit) reaches every socket.
        lead_id = created.json()["id"]
        for ws in sockets:
            event = _next_data(ws, 5)
            while event["data"].get("id") != lead_id:  # another run's event on a shared Redis
                event = _next_data(ws, 5)
            assert event["topic"] == "list:lead" and event["data"]["kind"] == "created"

        # Stopping the server tells every socket to reconnect (1012) and does not wait
        # for them for its whole graceful timeout.
        stopped = time.monotonic()
        server.terminate()
        for ws in sockets[:20]:
            ws.settimeout(5)
            frame = ws.recv_data_frame(control_frame=True)[1]
            assert frame.opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame.data[:2], "big") == 1012
        server.wait(timeout=8)
        assert time.monotonic() - stopped < 5
    finally:
        for ws in sockets:
            ws.close(timeout=0.2)
        output = stop_process(server)
    assert "Traceback" not in output, output
    # No control socket unless asked for: two instances of one user shared the default path.
    assert list(runtime_dir.iterdir()) == []


def test_gevent_patched_after_the_app_is_refused() -> None:
    """peewee imported before the patching keeps thread-local connection state that every
    greenlet would share: crmcore.wsgi refuses to load instead."""
    code = "import peewee\nfrom gevent import monkey\nmonkey.patch_all()\nimport crmcore.wsgi\n"
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "-c python:crmcore.gunicorn_conf" in done.stderr, done.stderr
