"""A query's embedding is computed once per text within a short window, and stays bounded."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.memory.query_cache import QueryVectorCache
from tta_dev_primitives.testing import capture_telemetry

from tests.support.clock import FakeClock


class CountingEmbedder:
    """A 3-d embedder that counts its query calls and reuses one output buffer."""

    name = "counting"
    dimensions = 3

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.queries: list[str] = []
        self.delay = delay
        self.fail = fail
        self.buffer = np.zeros(3, dtype=np.float32)

    def _vector(self, text: str) -> np.ndarray:
        self.buffer[:] = [len(text), text.count("a") + 1.0, 1.0]
        self.buffer /= np.linalg.norm(self.buffer)
        return self.buffer  # the same array every call, as some batching embedders do

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t).tolist() for t in texts]

    async def embed_query(self, text: str) -> np.ndarray:
        self.queries.append(text)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("model unavailable")
        return self._vector(text)


async def test_same_query_text_is_embedded_once_for_every_view() -> None:
    """Two searches of one text (the second through a scoped view) call the embedder once
    and return the same hits; another text calls it again."""
    embedder = CountingEmbedder()
    memory = MemoryPrimitive(embedder=embedder)
    await memory.add("a", "banana bread")
    await memory.add("b", "apple pie")
    first = await memory.search("banana", mode="semantic")
    again = await memory.search("banana", mode="hybrid")
    await memory.scoped("other").search("banana", mode="semantic")
    assert embedder.queries == ["banana"]
    assert [h.key for h in first] == [h.key for h in await memory.search("banana", mode="semantic")]
    assert {h.key for h in again} >= {"a"}
    await memory.search("apple", mode="semantic")
    assert embedder.queries == ["banana", "apple"]


async def test_a_view_with_another_embedder_embeds_the_query_with_its_own() -> None:
    """with_embedder's view never answers a search with the other embedder's cached vector
    of the same text (it found nothing: its namespace holds vectors of its own size)."""
    from tta_dev_primitives.memory.embeddings import HashingEmbedder

    memory = MemoryPrimitive(embedder=HashingEmbedder(dimensions=64))
    await memory.add("a", "cats and dogs")
    other = memory.with_embedder(HashingEmbedder(dimensions=32)).scoped("other")
    await other.add("b", "cats and dogs")
    assert [h.key for h in await memory.search("cats", mode="semantic")] == ["a"]
    assert [h.key for h in await other.search("cats", mode="semantic")] == ["b"]
    assert [h.key for h in await memory.search("cats", mode="semantic")] == ["a"]


async def test_concurrent_searches_of_one_text_share_one_call() -> None:
    """Searches of the same text started together wait for one embedder call."""
    embedder = CountingEmbedder(delay=0.01)
    memory = MemoryPrimitive(embedder=embedder)
    await memory.add("a", "banana bread")
    results = await asyncio.gather(*(memory.search("banana", mode="semantic") for _ in range(5)))
    assert embedder.queries == ["banana"]
    assert all([h.key for h in r] == ["a"] for r in results)


async def test_a_failed_embedding_fails_its_waiters_and_is_not_kept() -> None:
    """An embedder error reaches every concurrent search of the text; the next search asks
    the embedder again."""
    embedder = CountingEmbedder(delay=0.01, fail=True)
    memory = MemoryPrimitive(embedder=embedder)
    await memory.add("a", "banana bread")
    results = await asyncio.gather(
        *(memory.search("banana", mode="semantic") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert embedder.queries == ["banana"]
    embedder.fail = False
    assert [h.key for h in await memory.search("banana", mode="semantic")] == ["a"]
    assert embedder.queries == ["banana", "banana"]


async def test_vectors_expire_after_the_window_and_the_cache_stays_bounded() -> None:
    """A vector older than ``ttl`` is computed again; past ``max_entries`` the least
    recently used text is dropped; kept vectors are read-only copies."""
    clock = FakeClock()
    cache = QueryVectorCache(max_entries=2, ttl=60.0, clock=clock)
    calls: list[str] = []

    def embed(text: str):  # type: ignore[no-untyped-def]
        async def run() -> np.ndarray:
            calls.append(text)
            return np.asarray([1.0, 0.0], dtype=np.float32)

        return run

    first = await cache.vector("x", embed("x"))
    assert await cache.vector("x", embed("x")) is first
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 2.0
    clock.advance(61.0)
    await cache.vector("x", embed("x"))
    assert calls == ["x", "x"]
    await cache.vector("y", embed("y"))
    await cache.vector("x", embed("x"))  # x is now the most recently used
    await cache.vector("z", embed("z"))  # drops y
    assert len(cache) == 2
    await cache.vector("x", embed("x"))
    await cache.vector("y", embed("y"))
    assert calls == ["x", "x", "y", "z", "y"]
    assert (cache.hits, cache.misses) == (3, 5)
    with pytest.raises(ValueError, match="max_entries"):
        QueryVectorCache(max_entries=0)
    with pytest.raises(ValueError, match="ttl"):
        QueryVectorCache(ttl=0)


async def test_the_embed_query_span_says_whether_the_vector_was_kept() -> None:
    """Each semantic search has its embed_query span; the second one is marked cached."""
    with capture_telemetry() as telemetry:
        embedder = CountingEmbedder()
        memory = MemoryPrimitive(embedder=embedder, tracer_provider=telemetry.tracer_provider)
        await memory.add("a", "banana bread")
        await memory.search("banana", mode="semantic")
        await memory.search("banana", mode="semantic")
        spans = [s for s in telemetry.spans() if s.name == "memory.search.embed_query"]
    assert [s.attributes["memory.search.query_cached"] for s in spans] == [False, True]
    assert embedder.queries == ["banana"]
