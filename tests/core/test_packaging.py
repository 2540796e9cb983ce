"""The repository's own promises: the package ships every module, and CI runs exactly the
README's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in (("crmcore", "crmcore"), ("plugins", "crm_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    assert found == listed, f"pyproject.toml [tool.setuptools] packages differs: missing {found - listed}, stale {listed - found}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Run the tests\s+```bash\n(.+?)\n```", readme, re.S)
    assert block, "README.md has no '## Run the tests' bash block"
    command = block.group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert f'TEST_COMMAND="{command}"' in ci


def test_bundled_plugins_register_through_entry_points():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    entry_points = project.get("entry-points", {}).get("crm.plugins", {})
    bundled = {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists()}
    assert {v.removeprefix("crm_plugins.") for v in entry_points.values()} == bundled


def test_plugin_only_dependencies_are_extras():
    """scikit-learn is the scoring and chat plugins' extra, vaderSentiment the insights
    plugin's, openpyxl the analytics plugin's, nh3, imap-tools and phonenumbers the channels,
    email and sms plugins', not the core's; `.[all]` (the README's start command) and `.[test]` (CI)
    still install every bundled plugin's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    assert "scikit-learn" not in core and "flask-limiter" not in core
    extras = project["optional-dependencies"]
    assert any(r.startswith("scikit-learn") for r in extras["scoring"]) and any(r.startswith("scikit-learn") for r in extras["chat"])
    assert any(r.startswith("vaderSentiment") for r in extras["insights"])
    assert any(r.startswith("openpyxl") for r in extras["analytics"])  # the analytics plugin's XLSX export
    assert any(r.startswith("nh3") for r in extras["channels"]) and any(r.startswith("imap-tools") for r in extras["email"])
    assert any(r.startswith("phonenumbers") for r in extras["sms"])  # the sms plugin's E.164 numbers
    assert extras["all"] == ["crm-framework[scoring,chat,insights,analytics,channels,email,sms,production]"] and "crm-framework[all]" in extras["test"]
    assert "pip install -e '.[all]'" in (ROOT / "README.md").read_text()


def test_production_server_is_an_extra():
    """gunicorn, gevent and psycogreen serve production (crmcore/gunicorn_conf.py): the
    `production` extra, in `.[all]`, and the README's production command uses them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    production = {r.split(">")[0].split("<")[0] for r in project["optional-dependencies"]["production"]}
    assert production == {"gunicorn", "gevent", "psycogreen"}
    assert not production & {r.split(">")[0].split("<")[0] for r in project["dependencies"]}
    assert "gunicorn -c python:crmcore.gunicorn_conf" in (ROOT / "README.md").read_text()
