"""Smoke run of the search-engine benchmark (benchmarks/engine.py) and the quality script at
tiny sizes; no timing is asserted."""

from __future__ import annotations

import math

from benchmarks import engine, quality

from tta_dev_primitives import HashingEmbedder


def test_engine_benchmark_runs_and_renders() -> None:
    """Every measure is taken, the section renders, and splicing replaces it in a report."""
    results = engine.run([300], count=3)
    row = results["sizes"]["300"]
    for name in ("ours_keyword_ms", "ours_semantic_ms", "ours_hybrid_ms", "floor_matvec_ms"):
        assert row[name] > 0
    assert row["rss_mb"] > 0
    assert row["peak_rss_mb"] >= row["rss_mb"] * 0.5
    assert row["first_search_s"] > 0
    assert math.isnan(row["floor_bm25s_ms"]) or row["floor_bm25s_ms"] > 0
    section = engine.render(results, "cmd")
    assert section.startswith(engine.SECTION)
    assert "not measured" in section  # no 100k row: the targets say so
    report = "# R\n\n## Targets\n\nx\n\n## Notes\n\nn\n"
    once = engine.splice(report, section)
    assert once.index(engine.SECTION) < once.index("## Notes")
    assert engine.splice(once, section) == once


async def test_quality_script_scores_each_mode() -> None:
    """The evaluation set loads and every mode and kind gets recall and MRR in [0, 1]."""
    data = quality.load()
    assert len(data["memories"]) >= 200
    kinds = [q["kind"] for q in data["questions"]]
    assert kinds.count("paraphrase") >= 50
    assert kinds.count("keyword") >= 20
    results = await quality.evaluate(HashingEmbedder(64), data)
    assert {mode for _, mode in results} == set(quality.MODES)
    for row in results.values():
        assert 0.0 <= row["r@1"] <= row["r@5"] <= 1.0
    assert results[("keyword", "keyword")]["r@1"] == 1.0
    assert "| paraphrase (61) | hybrid |" in quality.table(results)


def test_redis_engine_benchmark_runs_and_renders() -> None:
    """The Redis search benchmark measures every figure on a private server at a tiny size,
    renders its section, and splices it into a report (no timing asserted)."""
    from benchmarks import redis_engine

    from tests.support.redis_servers import require_binary

    require_binary("redis")  # skips without one, fails under CI=true
    results = redis_engine.run([300], ["redis"])
    (row,) = results.values()
    for name in ("first_search_s", "reload_floor_s", "redis_keyword_ms", "redis_semantic_ms"):
        assert row[name] > 0
    assert row["get_us"] > 0
    assert row["raw_hget_us"] > 0
    section = redis_engine.render(results, "cmd")
    assert section.startswith(redis_engine.SECTION)
    assert "not measured" in section
    report = "# R\n\n## Targets\n\nx\n\n## Notes\n\nn\n"
    once = redis_engine.splice(report, section)
    assert once.index(redis_engine.SECTION) < once.index("## Notes")
    assert redis_engine.splice(once, section) == once
