"""Shared test set-up. The fixtures themselves come from crmcore.testing (a pytest plugin
that plugin authors get too); this adds the sample third-party plugin, installed with pip
into a temporary folder exactly as an integrator's plugin would be."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE_SRC = Path(__file__).parent / "sample_plugin"
GREETER_SRC = Path(__file__).parent.parent / "examples" / "greeter"


def pip_install(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install a plugin's source folder into a target folder and put it on sys.path, so
    the CRM finds it through its `crm.plugins` entry point, as an integrator's plugin is
    found. Returns the folder (for PYTHONPATH of subprocesses)."""
    build = tmp_path_factory.mktemp(f"{source.name}-src")
    src = build / source.name
    shutil.copytree(source, src)  # keep build/ and egg-info out of the source tree
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(src)],
        check=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    return target


@pytest.fixture(scope="session")
def sample_plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/sample_plugin, pip-installed (see :func:`pip_install`)."""
    return pip_install(SAMPLE_SRC, tmp_path_factory)


@pytest.fixture(scope="session")
def greeter_plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's example plugin (examples/greeter), pip-installed."""
    return pip_install(GREETER_SRC, tmp_path_factory)


@pytest.fixture
def sample_env(crm_env, sample_plugin_path):
    """Two tenants: alpha has the sample plugin on, beta does not."""
    crm_env.write_tenant("alpha", plugins=["sample"], settings={"sample": {"greeting": "Hi alpha"}})
    crm_env.write_tenant("beta")
    crm_env.create_app()
    return crm_env


def subprocess_env(sample_plugin_path: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    paths = [str(Path(__file__).parent.parent)]
    if sample_plugin_path is not None:
        paths.insert(0, str(sample_plugin_path))
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def stop_process(proc) -> str:
    """Terminate (then kill) a test subprocess; return what it printed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    output = proc.stdout.read() if proc.stdout else ""
    if proc.stdout:
        proc.stdout.close()
    return output


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    """A Redis for the tests that need one: ``CRM_TEST_REDIS_URL`` when set (it must
    answer), else a private redis-server on a free loopback port for this session, so a
    test never touches a Redis nobody asked it to use."""
    import socket
    import time

    import redis

    given = os.environ.get("CRM_TEST_REDIS_URL")
    if given:
        client = redis.Redis.from_url(given, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        except redis.RedisError as exc:
            pytest.fail(f"CRM_TEST_REDIS_URL={given} does not answer: {exc}")
        finally:
            client.close()
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary and no CRM_TEST_REDIS_URL")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("the private redis-server did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.kill()
        proc.wait(timeout=5)

