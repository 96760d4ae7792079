"""tests/ keeps the layout tests/README.md describes, so a module's tests stay easy to find."""

from __future__ import annotations

import re

from tests.support.paths import ROOT

TESTS = ROOT / "tests"


def test_test_modules_live_in_the_folders_of_the_layout() -> None:
    """No test module sits at the top of tests/; every folder under it is a package."""
    assert sorted(p.name for p in TESTS.glob("test_*.py")) == []
    folders = [
        d
        for d in TESTS.rglob("*")
        if d.is_dir() and not d.name.startswith((".", "__")) and any(d.glob("*.py"))
    ]
    assert [d for d in folders if not (d / "__init__.py").exists()] == []


def test_tests_import_helpers_only_from_support() -> None:
    """No test imports another test module or conftest.py (LangGraph's copied suite aside)."""
    other = re.compile(
        r"^\s*(from|import) (\.+(conftest|test_)|tests\.(conftest|unit|conformance|servers|"
        r"integrations|package)\b)",
        re.MULTILINE,
    )
    copied = TESTS / "integrations" / "langgraph_store"
    offenders = [
        str(p.relative_to(TESTS))
        for p in TESTS.rglob("*.py")
        if copied not in p.parents and other.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_what_benchmarks_and_scripts_import_from_tests_exists() -> None:
    """The benchmarks and scripts that borrow a test helper (a private cluster, servers)
    name a module that exists in tests/ (a move of tests/ once broke `make bench --cluster`)."""
    borrowed = re.compile(r"^\s*from (tests(?:\.\w+)+) import", re.MULTILINE)
    named = {
        module
        for folder in ("benchmarks", "scripts", "examples")
        for path in (ROOT / folder).rglob("*.py")
        for module in borrowed.findall(path.read_text(encoding="utf-8"))
    }
    assert named, "expected at least the cluster benchmark to borrow a helper"
    missing = [m for m in sorted(named) if not (ROOT / (m.replace(".", "/") + ".py")).exists()]
    assert missing == []
