"""Smoke runs of the benchmark harness (benchmarks/) at tiny sizes; no timing is asserted.

The full run is ``make bench``. Here the harness runs end to end on the systems this
environment has: the in-process floor and ours always, redis-py against private servers the
harness starts on free loopback ports when the binaries exist, and the peers of the ``bench``
extra only when it is installed (``make test`` installs ``.[dev]`` alone, so that test skips).
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
from benchmarks.harness import Config, Results, SizePlan, run
from benchmarks.report import evaluate_targets, machine_description, plot_search, render_markdown
from benchmarks.systems import OPERATIONS, all_systems

from tests.support.paths import ROOT

TINY = Config(
    sizes=(
        SizePlan(40, rounds=1, per_round=4, queries=2, op_budget=0.5),
        SizePlan(80, rounds=1, per_round=4, queries=2, op_budget=0.5),
    ),
    bulk=8,
)
BENCH_EXTRA = ("cachetools", "langgraph", "aiocache", "matplotlib")


def _quiet(message: str) -> None:
    """Discard the harness's progress lines."""


def _assert_measured(results: Results, keys: list[str]) -> None:
    for size in (40, 80):
        for key in keys:
            measured = results.samples[size][key]
            assert "add" in measured, f"{key} has no add samples at {size}"
            assert "get" in measured, f"{key} has no get samples at {size}"
            assert all(t >= 0 for samples in measured.values() for t in samples)
        for key in keys:
            assert results.checks.get(key) == "ok", f"{key}: {results.checks.get(key)}"


def _render(results: Results, tmp_path: Path) -> str:
    text = render_markdown(
        results, command="make bench", machine=machine_description(), plot="images/x.png"
    )
    (tmp_path / "benchmarks.md").write_text(text, encoding="utf-8")
    return text


def test_registry_has_every_required_system_and_operation() -> None:
    """The registry lists the floors, the peers and each mode of ours, and every operation."""
    keys = {spec.key for spec in all_systems()}
    assert {"dict", "lru", "langgraph", "aiocache", "raw-redis", "raw-valkey"} <= keys
    for where in ("memory", "redis", "valkey"):
        assert {f"ours-{where}-nosdk", f"ours-{where}-sdk"} <= keys
    assert [op.name for op in OPERATIONS] == [
        "add",
        "get",
        "search",
        "search_question",
        "delete",
        "add_many",
    ]


async def test_harness_runs_core_systems_and_renders_report(tmp_path: Path) -> None:
    """Without the bench extra the harness still measures dict, ours and raw Redis/Valkey."""
    config = replace(TINY, systems=("dict", "ours-", "raw-"))
    results = await run(config, log=_quiet)
    measured = [s["key"] for s in results.systems]
    assert "dict" in measured
    assert set(measured) | set(results.skipped) == {s.key for s in config.selected()}
    _assert_measured(results, measured)
    # A system that cannot run here is skipped with its reason, never silently dropped.
    assert all(reason for reason in results.skipped.values())
    text = _render(results, tmp_path)
    assert "## Targets" in text
    assert "| dict |" in text
    assert len(evaluate_targets(results)) >= 10
    # Ratios pair systems round by round; a system against itself is exactly 1.
    assert results.ratio(40, "dict", "get", "dict") == 1.0
    # The results survive a JSON round trip (make bench re-renders from it).
    again = Results.from_json(results.to_json())
    assert again.median(40, "dict", "get") == results.median(40, "dict", "get")


async def test_harness_runs_bench_extra_peers(tmp_path: Path) -> None:
    """With the bench extra installed, the peers run and the plot is drawn."""
    missing = [m for m in BENCH_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(
            f"bench extra not installed ({', '.join(missing)} missing): pip install -e '.[bench]'"
        )
    config = replace(TINY, systems=("dict", "lru", "langgraph", "aiocache", "ours-memory"))
    results = await run(config, log=_quiet)
    measured = [s["key"] for s in results.systems]
    assert {"dict", "lru", "langgraph", "aiocache"} <= set(measured)
    _assert_measured(results, measured)
    assert "search" not in results.samples[40]["aiocache"]  # no search there: skipped
    plot = tmp_path / "images" / "bench-search.png"
    assert plot_search(results, plot)
    assert plot.stat().st_size > 0
    assert "LangGraph InMemoryStore" in _render(results, tmp_path)


def test_a_full_run_keeps_the_sections_other_commands_write() -> None:
    """make bench rewrites docs/benchmarks.md; the marked sections of make bench-recall and of
    the memory and instruction-count scripts survive it (replaced only when the run has its own)."""
    from benchmarks.__main__ import keep_blocks

    previous = (
        "# old\n<!-- memory:start -->\nM\n<!-- memory:end -->\n## Notes\n"
        "<!-- recall:start -->\nR\n<!-- recall:end -->\n"
    )
    kept = keep_blocks(previous, "# new\n## Notes\n")
    assert kept.startswith("# new\n## Notes\n")
    assert kept.index("M\n") < kept.index("R\n")
    assert "# old" not in kept
    again = keep_blocks(previous, "# new\n<!-- recall:start -->\nR2\n<!-- recall:end -->\n")
    assert "R2" in again
    assert "\nR\n" not in again
    assert "\nM\n" in again
    assert keep_blocks("", "# new\n") == "# new\n"
    docs = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for name in ("memory", "op-instructions", "recall"):
        assert f"<!-- {name}:start -->" in docs
        assert f"<!-- {name}:end -->" in docs
