"""``crm import`` and ``crm export`` through click's CliRunner, on the test database:
the progress bar and summary, row errors, exit codes, dry runs, and a round trip."""

from __future__ import annotations

import csv
import io
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from crmcore import db
from crmcore.cli import cli
from crmcore.entities.models import Lead


def invoke(config_dir: Path, *args: str) -> Result:
    """``crm --config DIR ARGS`` in-process, without the caller's CRM_* variables."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CRM_")}
    result = CliRunner().invoke(cli, ["--config", str(config_dir), *args], env=clean, prog_name="crm")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is never an acceptable answer
    return result


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def leads(env: Any, slug: str = "acme") -> list[Lead]:
    with db.connection(), db.tenant_context(env.tenant(slug)):
        return list(Lead.select().order_by(Lead.id))


@pytest.fixture
def env(crm_env: Any) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.write_tenant("other", name="Other Inc")
    crm_env.create_app()
    return crm_env


def test_import_500_rows_with_progress_bar_and_summary(env: Any, tmp_path: Path) -> None:
    rows = [["name", "email", "status", "tags"]] + [[f"Lead {i:03d}", f"l{i}@example.com", "new" if i % 2 else "qualified", "cli"] for i in range(500)]
    result = invoke(env.config_dir, "import", "leads", str(write_csv(tmp_path / "leads.csv", rows)), "--tenant", "acme")
    assert result.exit_code == 0, result.output
    assert "importing leads" in result.output  # the progress bar's label
    assert "imported 500 leads into acme, 0 row(s) failed" in result.output
    stored = leads(env)
    assert len(stored) == 500 and {lead.source for lead in stored} == {"import"}
    assert leads(env, "other") == []


def test_row_errors_exit_1_and_show_the_first_20(env: Any, tmp_path: Path) -> None:
    rows = [["name", "email"], ["Good", "good@example.com"]] + [[f"Bad {i}", f"bad-{i}"] for i in range(25)] + [["Also good", ""]]
    result = invoke(env.config_dir, "import", "leads", str(write_csv(tmp_path / "leads.csv", rows)), "--tenant", "acme")
    assert result.exit_code == 1, result.output
    assert "row 3: email: " in result.output and "row 22: email: " in result.output and "row 23:" not in result.output
    assert "... and 5 more failed row(s)" in result.output
    assert "imported 2 leads into acme, 25 row(s) failed" in result.output
    assert [lead.name for lead in leads(env)] == ["Good", "Also good"]


def test_dry_run_writes_nothing(env: Any, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "leads.csv", [["name", "email"], ["A", "a@example.com"], ["B", "a@example.com"]])
    result = invoke(env.config_dir, "import", "leads", str(path), "--tenant", "acme", "--dry-run")
    assert result.exit_code == 1, result.output
    assert "row 3: email: duplicate of lead" in result.output
    assert "dry run: 1 leads would be imported, 1 row(s) would fail; nothing was written" in result.output
    assert leads(env) == []


def test_bad_arguments_exit_2(env: Any, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "leads.csv", [["name"], ["A"]])
    unknown_entity = invoke(env.config_dir, "import", "widgets", str(good), "--tenant", "acme")
    assert unknown_entity.exit_code == 2 and "widgets" in unknown_entity.output
    unknown_tenant = invoke(env.config_dir, "import", "leads", str(good), "--tenant", "nope")
    assert unknown_tenant.exit_code == 2 and "no tenant 'nope'" in unknown_tenant.output
    missing = invoke(env.config_dir, "import", "leads", str(tmp_path / "missing.csv"), "--tenant", "acme")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    columns = invoke(env.config_dir, "import", "leads", str(write_csv(tmp_path / "cols.csv", [["name", "colour"], ["A", "red"]])), "--tenant", "acme")
    assert columns.exit_code == 2 and "unknown column(s): colour" in columns.output
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("name\nJosé\n".encode("latin-1"))
    encoding = invoke(env.config_dir, "import", "leads", str(latin1), "--tenant", "acme")
    assert encoding.exit_code == 2 and "not UTF-8" in encoding.output
    assert invoke(env.config_dir, "export", "leads", "--tenant", "nope").exit_code == 2
    assert leads(env) == []


def test_export_then_import_into_another_tenant(env: Any, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [["name", "email", "tags", "estimated_value"], ["Ada", "ada@example.com", "b;a", "10.50"], ["Bob", "", "", ""]])
    assert invoke(env.config_dir, "import", "leads", str(source), "--tenant", "acme").exit_code == 0
    out = tmp_path / "out.csv"
    exported = invoke(env.config_dir, "export", "leads", "--tenant", "acme", "--output", str(out))
    assert exported.exit_code == 0 and "exported 2 leads from acme" in exported.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert [(r["name"], r["tags"], r["estimated_value"]) for r in rows] == [("Ada", "a;b", "10.50"), ("Bob", "", "")]
    assert invoke(env.config_dir, "import", "leads", str(out), "--tenant", "other").exit_code == 0
    assert [(lead.name, lead.email, lead.estimated_value) for lead in leads(env, "other")] == [("Ada", "ada@example.com", Decimal("10.50")), ("Bob", None, None)]
    to_stdout = invoke(env.config_dir, "export", "leads", "--tenant", "other")
    assert to_stdout.exit_code == 0 and to_stdout.stdout.splitlines()[0].startswith("id,name,email")
    assert len(to_stdout.stdout.splitlines()) == 3
