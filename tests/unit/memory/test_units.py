"""Units: the shared search module, codec, key helper and the synchronous InMemoryStore."""

from __future__ import annotations

import math

import pytest

from tta_dev_primitives import (
    InMemoryStore,
    MemoryBackendError,
    MemoryPrimitive,
    WorkflowContext,
    create_memory_key,
)
from tta_dev_primitives.memory import search
from tta_dev_primitives.memory.records import Entry

from tests.conftest import FakeClock


def test_tokenize_is_case_insensitive_unicode_words() -> None:
    """Words are maximal runs of Unicode word characters, lower-cased."""
    assert search.tokenize("Hello, WORLD! café_au-lait 東京 42") == [
        "hello",
        "world",
        "café_au",
        "lait",
        "東京",
        "42",
    ]


def test_string_leaves_skip_keys_and_numbers() -> None:
    """Only string values are leaves, depth first in document order."""
    value = {"title": "A", "n": 1, "tags": ["b", {"deep": "c"}, 2], "flag": True}
    assert search.string_leaves(value) == ["A", "b", "c"]


def test_bm25_prefers_rarer_terms_and_shorter_docs() -> None:
    """idf falls with document frequency; the same tf scores more in a shorter document."""
    assert search.idf(1, 100) > search.idf(50, 100) > 0
    q = search.prepare_query("redis")
    assert q is not None
    short = search.make_document("redis rocks")
    long = search.make_document("redis " + "filler " * 20)
    df = {"redis": 2}
    assert search.keyword_score(q, short, df, 2, 12) > search.keyword_score(q, long, df, 2, 12)


def test_prepare_query_blank_is_none() -> None:
    """Blank queries prepare to None; words are de-duplicated in order."""
    assert search.prepare_query("  \t") is None
    q = search.prepare_query(" Cat cat DOG ")
    assert q == search.KeywordQuery("cat cat dog", ("cat", "dog"))


def test_top_orders_best_then_newest() -> None:
    """Ties break by higher sequence number (newer write) first."""
    scored = [(1.0, 1, "a"), (2.0, 2, "b"), (1.0, 3, "c")]
    assert [k for _, _, k in search.top(scored, None)] == ["b", "c", "a"]
    assert [k for _, _, k in search.top(scored, 2)] == ["b", "c"]


def test_rrf_fuses_rankings() -> None:
    """A key ranked well in both lists beats one ranked first in only one."""
    kw = [(5.0, 1, "a"), (4.0, 2, "b")]
    sem = [(0.9, 2, "b"), (0.8, 3, "c")]
    fused = search.fuse_rrf([kw, sem], None)
    assert next(k for _, _, k in fused) == "b"
    assert fused[0][0] == pytest.approx(1 / 62 + 1 / 61)


def test_normalize_vector() -> None:
    """Vectors become unit length; zero stays zero."""
    assert search.normalize_vector([3, 4]).tolist() == pytest.approx([0.6, 0.8])
    assert search.normalize_vector([3, 4]).dtype == "float32"
    assert search.normalize_vector([0, 0]).tolist() == [0.0, 0.0]
    assert math.isclose(
        sum(x * x for x in search.normalize_vector([1, 2, 3]).tolist()), 1.0, rel_tol=1e-6
    )
    with pytest.raises(ValueError, match="NaN"):
        search.normalize_vector([1.0, float("nan")])


def test_create_memory_key() -> None:
    """user:session, plus a stable short hash of the context independent of key order."""
    assert create_memory_key("u1", "s1") == "u1:s1"
    a = create_memory_key("u1", "s1", {"task": "x", "n": 1})
    b = create_memory_key("u1", "s1", {"n": 1, "task": "x"})
    c = create_memory_key("u1", "s1", {"n": 2, "task": "x"})
    assert a == b != c
    assert a.startswith("u1:s1:")
    assert len(a.rsplit(":", 1)[1]) == 16
    with pytest.raises(ValueError, match="user_id"):
        create_memory_key("", "s")
    with pytest.raises(TypeError, match="session_id"):
        create_memory_key("u", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context"):
        create_memory_key("u", "s", {"x": {1, 2}})


def test_in_memory_store_sync_api() -> None:
    """The plain data structure: LRU order, TTL with an injected clock, search, dunders."""
    clock = FakeClock()
    store = InMemoryStore(max_size=2, clock=clock)
    store.add("a", "apple pie")
    store.add("b", {"text": "banana bread"}, ttl=1.0)
    assert store.get("a") == "apple pie"
    assert store.keys() == ["b", "a"]
    assert [h.key for h in store.search("bread")] == ["b"]
    assert store.keys() == ["b", "a"]  # search does not refresh
    assert "b" in store
    assert len(store) == 2
    assert list(store) == ["b", "a"]
    clock.advance(1.0)
    assert "b" not in store
    assert store.get("b", "gone") == "gone"
    assert store.size() == 1
    store.add("c", "cherry")
    store.add("d", "date")
    assert store.keys() == ["c", "d"]
    assert store.delete("c") is True
    assert store.delete("c") is False
    assert store.clear() == 1
    assert store.size() == 0


def test_in_memory_store_validates() -> None:
    """Bad arguments raise errors naming them."""
    with pytest.raises(ValueError, match="max_size"):
        InMemoryStore(max_size=0)
    with pytest.raises(TypeError, match="max_size"):
        InMemoryStore(max_size="10")  # type: ignore[arg-type]
    store = InMemoryStore(max_value_bytes=10)
    with pytest.raises(ValueError, match="max_value_bytes"):
        store.add("k", "x" * 20)
    with pytest.raises(ValueError, match="limit"):
        store.search("x", limit=0)
    assert store.size() == 0


def test_store_put_reports_evictions() -> None:
    """put() returns how many records the LRU bound evicted."""
    store = InMemoryStore(max_size=1)
    assert store.put(Entry("a", '"v"')) == 0
    assert store.put(Entry("b", '"v"')) == 1


def test_primitive_constructor_contract() -> None:
    """backend= with max_size= or redis_url= is refused; namespaces are validated."""
    from tta_dev_primitives import InMemoryBackend

    with pytest.raises(ValueError, match="max_size"):
        MemoryPrimitive(backend=InMemoryBackend(), max_size=10)
    with pytest.raises(ValueError, match="redis_url"):
        MemoryPrimitive(backend=InMemoryBackend(), redis_url="redis://localhost")
    with pytest.raises(ValueError, match="namespace"):
        MemoryPrimitive(namespace="")
    with pytest.raises(TypeError, match="namespace"):
        MemoryPrimitive(namespace=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backend"):
        MemoryPrimitive(backend=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default_ttl"):
        MemoryPrimitive(default_ttl=0)
    with pytest.raises(ValueError, match="scoped"):
        MemoryPrimitive().scoped()
    memory = MemoryPrimitive(namespace=("app", "v1"))
    assert memory.namespace == ("app", "v1")
    info = memory.get_backend_info()
    assert info == {
        "backend": "in_memory",
        "namespace": "app/v1",
        "persistent": False,
        "degraded": False,
    }
    assert memory.is_using_redis() is False


async def test_primitive_async_context_manager_closes_owned_backend() -> None:
    """async with closes a backend the primitive built; a scoped view closes nothing."""
    async with MemoryPrimitive() as memory:
        view = memory.scoped("x")
        await view.add("k", 1)
        await view.aclose()
        assert await view.get("k") == 1
    with pytest.raises(MemoryBackendError, match="closed"):
        await memory.size()


async def test_steps_take_metadata_and_filter_as_constants_or_callables() -> None:
    """add_step(metadata=...) stores metadata; search_step(filter=...) filters by it."""
    memory = MemoryPrimitive()
    store = memory.add_step(
        key=lambda text, ctx: f"turn:{ctx.state.setdefault('n', 0)}",
        metadata=lambda text, ctx: {"role": ctx.metadata["role"]},
    )
    ctx = WorkflowContext(metadata={"role": "user"})
    assert await store.execute("I like green tea", ctx) == "I like green tea"
    other = memory.add_step(key="turn:9", metadata={"role": "assistant"}, ttl=60)
    await other.execute("green tea is nice", WorkflowContext())
    by_role = memory.search_step(limit=5, filter=lambda q, ctx: {"role": ctx.metadata["role"]})
    hits = await by_role.execute("green tea", ctx)
    assert [h.key for h in hits] == ["turn:0"]
    constant = memory.search_step(filter={"role": "assistant"})
    assert [h.key for h in await constant.execute("green tea")] == ["turn:9"]
    pipeline = memory.search_step(limit=1) >> memory.add_step(key="last")
    assert pipeline.name == "search_step>>add_step"
