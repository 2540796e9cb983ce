"""The meta-test (as Datasette's test_plugin_hooks_have_tests): every hook in
crmcore.hookspecs is documented in docs/hooks.md and has a ``test_hook_<name>`` test,
and docs/hooks.md documents no hook that does not exist."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from crmcore import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS_MD = ROOT / "docs" / "hooks.md"
TESTS = ROOT / "tests"


def declared_hooks() -> set[str]:
    return {
        name
        for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("crm_") and func.__module__ == hookspecs.__name__
    }


def documented_hooks() -> set[str]:
    return set(re.findall(r"^## (crm_\w+)\s*$", HOOKS_MD.read_text(), flags=re.MULTILINE))


def hooks_with_tests() -> set[str]:
    found: set[str] = set()
    for path in TESTS.rglob("*.py"):
        found.update(re.findall(r"^\s*def test_hook_(crm_\w+)\s*\(", path.read_text(), flags=re.MULTILINE))
    return found


def test_there_are_hooks():
    assert len(declared_hooks()) >= 10, declared_hooks()


def test_every_hook_is_documented():
    missing = sorted(declared_hooks() - documented_hooks())
    assert not missing, f"docs/hooks.md has no '## <name>' section for: {', '.join(missing)}"


def test_every_hook_has_a_test():
    missing = sorted(declared_hooks() - hooks_with_tests())
    assert not missing, "no `def test_hook_<name>` under tests/ for: " + ", ".join(missing)


def test_docs_document_only_existing_hooks():
    unknown = sorted(documented_hooks() - declared_hooks())
    assert not unknown, f"docs/hooks.md documents hooks that crmcore.hookspecs does not declare: {', '.join(unknown)}"
