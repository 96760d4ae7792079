"""The behavioural contract every memory backend must meet (DESIGN: "Semantics every backend
must share"). Written once; runs on every entry of the ``memory_backend`` fixture."""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tta_dev_primitives import HashingEmbedder, MemoryPrimitive, SearchHit
from tta_dev_primitives.memory.rerank import RERANK_DEPTH
from tta_dev_primitives.memory.search import MIN_RELEVANT_SCORE

from tests.support.backends import BackendHarness
from tests.support.reference import ReferenceMemory

MakeMemory = Callable[..., Awaitable[MemoryPrimitive]]

JSON_VALUES: list[Any] = [
    {"text": "hello", "nested": {"list": [1, 2.5, True, None, "x"], "empty": {}}},
    [1, "two", [3, [4]], {"five": 5}],
    "plain string with ünïcödé and emoji 🧠",
    "",
    0,
    -17,
    2**70,
    3.141592653589793,
    -0.0,
    True,
    False,
    None,
    [],
    {},
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=lambda v: type(v).__name__)
async def test_json_values_round_trip(make_memory: MakeMemory, value: Any) -> None:
    """What get returns equals what was added, for every JSON value type."""
    memory = await make_memory()
    await memory.add("k", value)
    got = await memory.get("k", default="<missing>")
    assert got == value
    assert type(got) is type(value)


async def test_values_are_never_aliased(make_memory: MakeMemory) -> None:
    """Mutating the added object or a returned copy changes nothing stored."""
    memory = await make_memory()
    original = {"items": [1, 2], "meta": {"a": 1}}
    await memory.add("k", original)
    original["items"].append(3)
    got = await memory.get("k")
    assert got == {"items": [1, 2], "meta": {"a": 1}}
    got["meta"]["a"] = 99
    assert await memory.get("k") == {"items": [1, 2], "meta": {"a": 1}}
    hits = await memory.search("zzz-none")
    assert hits == []
    flat = {"role": "user", "n": 1, "x": 0.5}
    await memory.add("flat", flat)
    flat["role"] = "changed"
    first = await memory.get("flat")
    first["n"] = 99
    assert await memory.get("flat") == {"role": "user", "n": 1, "x": 0.5}
    # A search hit's value is a copy too, flat or nested.
    await memory.add("nested", ["user", {"deep": 1}])
    for hit in await memory.search("user", limit=5):
        if isinstance(hit.value, dict):
            hit.value["n"] = 99
        else:
            hit.value[1]["deep"] = 99
    assert await memory.get("flat") == {"role": "user", "n": 1, "x": 0.5}
    assert await memory.get("nested") == ["user", {"deep": 1}]
    again = {h.key: h.value for h in await memory.search("user", limit=5)}
    assert again["flat"] == {"role": "user", "n": 1, "x": 0.5}
    assert again["nested"] == ["user", {"deep": 1}]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({1, 2}, TypeError),
        ((1, 2), TypeError),
        (b"bytes", TypeError),
        (object(), TypeError),
        ({1: "int key"}, TypeError),
        ({"ok": [1, {2, 3}]}, TypeError),
        (float("nan"), ValueError),
        ({"x": float("inf")}, ValueError),
    ],
    ids=["set", "tuple", "bytes", "object", "int-key", "nested-set", "nan", "inf"],
)
async def test_non_json_values_are_refused(
    make_memory: MakeMemory, value: Any, error: type[Exception]
) -> None:
    """A value that is not JSON raises a clear error naming it, and nothing is stored."""
    memory = await make_memory()
    with pytest.raises(error, match="value"):
        await memory.add("k", value)
    assert await memory.get("k", "<missing>") == "<missing>"
    assert await memory.size() == 0


async def test_circular_value_is_refused(make_memory: MakeMemory) -> None:
    """A self-referencing value is refused with ValueError."""
    memory = await make_memory()
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="value"):
        await memory.add("k", loop)
    assert await memory.size() == 0


def _nested(depth: int, leaf: Any = "deep needle") -> Any:
    """``depth`` nested containers (alternating list and dict) around ``leaf``."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"n": value}
    return value


async def test_nesting_limit_for_values_metadata_and_filters(make_memory: MakeMemory) -> None:
    """Values, metadata and filters up to MAX_DEPTH levels work; deeper ones are refused."""
    from tta_dev_primitives.memory.codec import MAX_DEPTH

    memory = await make_memory()
    await memory.add("ok", _nested(MAX_DEPTH), metadata={"m": _nested(MAX_DEPTH - 1, 1)})
    assert await memory.get("ok") == _nested(MAX_DEPTH)
    assert [h.key for h in await memory.search("needle")] == ["ok"]
    assert [h.key for h in await memory.search("needle", filter={"m": _nested(MAX_DEPTH - 1, 1)})]
    for depth in (MAX_DEPTH + 1, 950, 5000):
        with pytest.raises(ValueError, match="value is nested more than 100"):
            await memory.add("deep", _nested(depth))
        with pytest.raises(ValueError, match="metadata is nested more than 100"):
            await memory.add("deep", 1, metadata={"m": _nested(depth)})
        with pytest.raises(ValueError, match="filter is nested more than 100"):
            await memory.search("needle", filter={"m": _nested(depth)})
        with pytest.raises(ValueError, match=r"items\[1\] value is nested"):
            await memory.add_many([("a", 1), ("deep", _nested(depth))])
    assert await memory.keys() == ["ok"]
    assert [h.key for h in await memory.search("needle")] == ["ok"]


async def test_circular_metadata_and_filter_are_refused(make_memory: MakeMemory) -> None:
    """Circular metadata or filters are a ValueError naming the argument, not RecursionError."""
    memory = await make_memory()
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match=r"metadata is nested more than 100 .*circular"):
        await memory.add("k", 1, metadata={"m": loop})
    with pytest.raises(ValueError, match="filter is nested"):
        await memory.search("x", filter={"m": loop})
    shared = {"s": [1, 2]}  # shared, not circular: fine
    await memory.add("k", [shared, shared], metadata={"a": shared, "b": shared})
    assert await memory.get("k") == [{"s": [1, 2]}, {"s": [1, 2]}]
    assert await memory.size() == 1


async def test_oversize_value_is_refused(make_memory: MakeMemory) -> None:
    """A value over max_value_bytes is refused with ValueError and nothing is stored."""
    memory = await make_memory(max_value_bytes=100)
    await memory.add("fits", "x" * 90)
    with pytest.raises(ValueError, match="max_value_bytes"):
        await memory.add("big", "x" * 200)
    with pytest.raises(ValueError, match="max_value_bytes"):
        await memory.add("big", "é" * 60)  # 120 UTF-8 bytes, 60 characters
    assert await memory.keys() == ["fits"]


async def test_default_max_value_bytes_is_one_mebibyte(make_memory: MakeMemory) -> None:
    """The default limit accepts just under 1 MiB and refuses just over."""
    memory = await make_memory()
    await memory.add("ok", "a" * (1_048_576 - 2))
    with pytest.raises(ValueError, match="max_value_bytes"):
        await memory.add("too-big", "a" * 1_048_576)
    assert await memory.keys() == ["ok"]


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (123, TypeError),
        (None, TypeError),
        (b"k", TypeError),
        ("", ValueError),
        ("k" * 1025, ValueError),
        ("é" * 513, ValueError),
    ],
    ids=["int", "none", "bytes", "empty", "1025-ascii", "1026-bytes-utf8"],
)
async def test_bad_keys_are_refused(make_memory: MakeMemory, key: Any, error: type) -> None:
    """Keys must be non-empty str of at most 1024 UTF-8 bytes; nothing is stored otherwise."""
    memory = await make_memory()
    with pytest.raises(error, match="key"):
        await memory.add(key, "v")
    assert await memory.size() == 0


async def test_longest_key_is_accepted(make_memory: MakeMemory) -> None:
    """A key of exactly 1024 UTF-8 bytes works."""
    memory = await make_memory()
    key = "é" * 512
    await memory.add(key, 1)
    assert await memory.get(key) == 1


SPECIAL_KEYS = [
    "*",
    "?",
    "[a-z]",
    "a*",
    "{x}",
    "}",
    "{",
    "a:b",
    "::",
    "ключ",
    "键 🔑",
    " sp ace ",
    "line\nbreak",
    "tab\t",
    "\\",
    "%2F",
    "a/b",
    "\x00nul",
]


async def test_special_characters_in_keys_are_literal(make_memory: MakeMemory) -> None:
    """Pattern and separator characters are plain characters: no globbing, no escaping out."""
    memory = await make_memory()
    for i, key in enumerate(SPECIAL_KEYS):
        await memory.add(key, i)
    assert await memory.keys() == SPECIAL_KEYS
    for i, key in enumerate(SPECIAL_KEYS):
        assert await memory.get(key) == i
    assert await memory.delete("*") is True
    assert await memory.delete("a*") is True
    assert await memory.delete("[a-z]") is True
    assert await memory.size() == len(SPECIAL_KEYS) - 3
    assert await memory.get("?") == 1


async def test_overwrite_replaces_value_and_metadata(make_memory: MakeMemory) -> None:
    """Adding an existing key replaces its value and metadata."""
    memory = await make_memory()
    await memory.add("k", "old words", metadata={"v": 1})
    await memory.add("k", "new words", metadata={"v": 2})
    assert await memory.get("k") == "new words"
    assert await memory.size() == 1
    assert await memory.search("old") == []
    hits = await memory.search("new")
    assert [(h.key, h.metadata) for h in hits] == [("k", {"v": 2})]


async def test_delete_reports_whether_it_deleted(make_memory: MakeMemory) -> None:
    """delete returns True for a live record, False otherwise; the record is gone."""
    memory = await make_memory()
    await memory.add("k", "v")
    assert await memory.delete("k") is True
    assert await memory.delete("k") is False
    assert await memory.get("k") is None
    assert await memory.search("v") == []


# -- TTL ---------------------------------------------------------------------------------------


async def test_ttl_expires_record_everywhere(
    make_memory: MakeMemory, memory_backend: BackendHarness
) -> None:
    """An expired record is not returned by get, search or keys, nor counted by size."""
    memory = await make_memory()
    await memory.add("short", "ephemeral python note", ttl=0.25)
    await memory.add("long", "durable python note", ttl=60)
    await memory.add("forever", "eternal python note")
    assert await memory.size() == 3
    await memory_backend.advance(0.4)
    assert await memory.get("short") is None
    assert await memory.get("long") == "durable python note"
    assert sorted(await memory.keys()) == ["forever", "long"]
    assert await memory.size() == 2
    assert {h.key for h in await memory.search("python")} == {"long", "forever"}


async def test_ttl_expiry_without_reads_is_invisible(
    make_memory: MakeMemory, memory_backend: BackendHarness
) -> None:
    """Expired records vanish from size, keys and search even if never read again."""
    memory = await make_memory()
    for i in range(5):
        await memory.add(f"k{i}", f"word{i} shared", ttl=0.2)
    await memory.add("stay", "shared")
    await memory_backend.advance(0.35)
    assert await memory.size() == 1
    assert await memory.keys() == ["stay"]
    assert [h.key for h in await memory.search("shared")] == ["stay"]


async def test_default_ttl_and_override(
    make_memory: MakeMemory, memory_backend: BackendHarness
) -> None:
    """default_ttl applies when add gets no ttl; an explicit ttl wins."""
    memory = await make_memory(default_ttl=0.25)
    await memory.add("default", 1)
    await memory.add("explicit", 2, ttl=30)
    await memory.add_many({"batch": 3})
    await memory_backend.advance(0.4)
    assert await memory.keys() == ["explicit"]


async def test_rewrite_resets_ttl(make_memory: MakeMemory, memory_backend: BackendHarness) -> None:
    """Re-adding a key without ttl makes it permanent again."""
    memory = await make_memory()
    await memory.add("k", 1, ttl=0.2)
    await memory.add("k", 2)
    await memory_backend.advance(0.35)
    assert await memory.get("k") == 2


@pytest.mark.parametrize(
    ("ttl", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("1", TypeError),
        (True, TypeError),
        (10**400, ValueError),
        (1e16, ValueError),
    ],
    ids=["zero", "negative", "nan", "inf", "str", "bool", "huge-int", "centuries"],
)
async def test_bad_ttl_is_refused(make_memory: MakeMemory, ttl: Any, error: type) -> None:
    """TTL must be a finite number of seconds > 0; nothing is stored otherwise."""
    memory = await make_memory()
    with pytest.raises(error, match="ttl"):
        await memory.add("k", "v", ttl=ttl)
    assert await memory.size() == 0


# -- LRU ---------------------------------------------------------------------------------------


async def test_lru_bound_evicts_least_recently_used(make_memory: MakeMemory) -> None:
    """Past max_size the least recently used record goes; get refreshes, search does not."""
    memory = await make_memory(max_size=3)
    await memory.add("a", "alpha word")
    await memory.add("b", "beta word")
    await memory.add("c", "gamma word")
    assert await memory.get("a") == "alpha word"  # a is now most recent
    assert len(await memory.search("beta")) == 1  # search must not refresh b
    await memory.add("d", "delta word")
    assert await memory.keys() == ["c", "a", "d"]
    assert await memory.get("b") is None
    assert await memory.size() == 3
    assert {h.key for h in await memory.search("word")} == {"a", "c", "d"}


async def test_lru_bound_is_per_namespace(make_memory: MakeMemory) -> None:
    """Each namespace holds max_size records of its own."""
    memory = await make_memory(max_size=2)
    other = memory.scoped("other")
    for key in "abc":
        await memory.add(key, key)
        await other.add(key, key)
    assert await memory.keys() == ["b", "c"]
    assert await other.keys() == ["b", "c"]


async def test_unbounded_store(make_memory: MakeMemory) -> None:
    """max_size=None keeps everything."""
    memory = await make_memory(max_size=None)
    await memory.add_many({f"k{i}": i for i in range(1500)})
    assert await memory.size() == 1500


# -- namespaces --------------------------------------------------------------------------------


async def test_namespaces_are_isolated(make_memory: MakeMemory) -> None:
    """No get, search, keys, size or clear crosses namespaces, even prefix-like ones."""
    root = await make_memory(namespace="foo")
    views = {
        "foo": root,
        "foobar": MemoryPrimitive(backend=root.backend, namespace="foobar"),
        "a,b": root.scoped("a", "b"),
        "a:b": root.scoped("a:b"),
        "a/b": root.scoped("a/b"),
        "a}b": root.scoped("a}b"),
        "*": root.scoped("*"),
    }
    for name, view in views.items():
        await view.add("shared-key", f"value of {name} python")
        await view.add(f"only-{name}", "x")
    for name, view in views.items():
        assert await view.get("shared-key") == f"value of {name} python"
        assert sorted(await view.keys()) == sorted(["shared-key", f"only-{name}"])
        assert await view.size() == 2
        hits = await view.search("python")
        assert [h.value for h in hits] == [f"value of {name} python"]
    assert await views["a:b"].clear() == 2
    assert await views["a:b"].size() == 0
    for name, view in views.items():
        if name != "a:b":
            assert await view.size() == 2, name


async def test_scoped_views_nest_and_share_backend(make_memory: MakeMemory) -> None:
    """scoped() composes namespaces; a view shares its parent's backend."""
    memory = await make_memory(namespace="app")
    user = memory.scoped("user-1")
    task = user.scoped("task-9")
    assert task.namespace == ("app", "user-1", "task-9")
    assert task.backend is memory.backend
    await task.add("k", 1)
    assert await memory.scoped("user-1", "task-9").get("k") == 1
    assert await user.get("k") is None


# -- search ------------------------------------------------------------------------------------


async def test_keyword_search_ranks_by_bm25(make_memory: MakeMemory) -> None:
    """More occurrences of rarer query words rank higher; case does not matter."""
    memory = await make_memory()
    await memory.add("one", "Redis is a database. Redis is fast. REDIS!")
    await memory.add("two", "A database can be slow")
    await memory.add("three", "Cats sleep all day")
    hits = await memory.search("redis DATABASE")
    assert [h.key for h in hits] == ["one", "two"]
    assert hits[0].score > hits[1].score > 0
    assert all(isinstance(h, SearchHit) for h in hits)


async def test_search_finds_whole_query_substrings(make_memory: MakeMemory) -> None:
    """A record whose string leaf contains the whole query is always found ("pyth")."""
    memory = await make_memory()
    await memory.add("py", {"note": "I write Python daily"})
    await memory.add("other", "nothing relevant")
    await memory.add("phrase", "we met at the typhoon shelter")
    assert [h.key for h in await memory.search("pyth")] == ["py"]
    assert [h.key for h in await memory.search("e pyth")] == ["py"]
    assert [h.key for h in await memory.search("phoon shel")] == ["phrase"]
    assert [h.key for h in await memory.search("!!")] == []


async def test_search_ignores_dict_keys_and_numbers(make_memory: MakeMemory) -> None:
    """Only string leaves are searched: not dict key names, not numbers."""
    memory = await make_memory()
    await memory.add("k", {"secretfield": 12345, "text": "hello"})
    assert await memory.search("secretfield") == []
    assert await memory.search("12345") == []
    assert [h.key for h in await memory.search("hello")] == ["k"]


async def test_search_ties_break_newest_first(make_memory: MakeMemory) -> None:
    """Equal scores come newest write first; re-adding makes a record newest."""
    memory = await make_memory()
    for key in ["first", "second", "third"]:
        await memory.add(key, "same words here")
    assert [h.key for h in await memory.search("words")] == ["third", "second", "first"]
    await memory.get("first")  # a read is not a write
    assert [h.key for h in await memory.search("words")] == ["third", "second", "first"]
    await memory.add("first", "same words here")
    assert [h.key for h in await memory.search("words")] == ["first", "third", "second"]


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
async def test_blank_query_returns_nothing(make_memory: MakeMemory, query: str) -> None:
    """An empty or whitespace-only query returns []."""
    memory = await make_memory()
    await memory.add("k", "   ")
    assert await memory.search(query) == []


async def test_search_limit_and_filter(make_memory: MakeMemory) -> None:
    """limit caps the hits; filter keeps records whose metadata fields are equal."""
    memory = await make_memory()
    for i in range(10):
        await memory.add(f"k{i}", f"note {i} about memory", metadata={"user": f"u{i % 2}", "i": i})
    assert len(await memory.search("memory", limit=3)) == 3
    hits = await memory.search("memory", limit=10, filter={"user": "u1"})
    assert sorted(h.key for h in hits) == [f"k{i}" for i in range(1, 10, 2)]
    assert all(h.metadata is not None and h.metadata["user"] == "u1" for h in hits)
    assert await memory.search("memory", filter={"user": "u1", "i": 3}) != []
    assert await memory.search("memory", filter={"user": "nobody"}) == []
    assert await memory.search("memory", filter={"i": True}) == []  # True is not 1 in JSON


async def test_search_argument_errors(make_memory: MakeMemory) -> None:
    """Bad search arguments name themselves."""
    memory = await make_memory()
    with pytest.raises(TypeError, match="query"):
        await memory.search(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        await memory.search("x", limit=0)
    with pytest.raises(ValueError, match="mode"):
        await memory.search("x", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="embedder"):
        await memory.search("x", mode="semantic")
    with pytest.raises(TypeError, match="filter"):
        await memory.search("x", filter=["user"])  # type: ignore[arg-type]


async def test_search_metadata_is_a_copy(make_memory: MakeMemory) -> None:
    """Neither the caller's metadata nor a hit's metadata is aliased with what is stored."""
    memory = await make_memory()
    meta = {"tags": ["a"]}
    await memory.add("k", "text", metadata=meta)
    meta["tags"].append("caller")
    assert [h.key for h in await memory.search("text", filter={"tags": ["a"]})] == ["k"]
    (hit,) = await memory.search("text")
    assert hit.metadata is not None
    hit.metadata["tags"].append("b")
    (again,) = await memory.search("text")
    assert again.metadata == {"tags": ["a"]}


WORDS = [
    "redis",
    "python",
    "memory",
    "agent",
    "trace",
    "span",
    "vector",
    "search",
    "cache",
    "fast",
    "slow",
    "tiny",
    "huge",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "café",
    "naïve",
    "東京",
    "data",
    "store",
    "key",
    "value",
]


def _random_corpus(seed: int, n: int) -> list[tuple[str, Any, dict[str, Any]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))
        value: Any = rng.choice([words, {"text": words, "n": i}, [words, {"deep": words.upper()}]])
        out.append((f"key-{rng.randint(0, n // 2)}", value, {"group": rng.randint(0, 2)}))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_search_matches_reference_backend(make_memory: MakeMemory, seed: int) -> None:
    """Same records and queries give the same hits, scores and order as the reference model.

    The reference (tests/support/reference.py) shares no storage or index code with any backend: it
    keeps records in an OrderedDict and scores every record one at a time, so this fails for
    the in-memory backend as much as for Redis when an index or a store goes wrong.
    """
    memory = await make_memory(max_size=40, embedder=HashingEmbedder(64))
    reference = ReferenceMemory(max_size=40, embedder=HashingEmbedder(64))
    rng = random.Random(seed)
    for key, value, meta in _random_corpus(seed, 80):
        await memory.add(key, value, metadata=meta)
        await reference.add(key, value, metadata=meta)
        if rng.random() < 0.2:
            assert await memory.get(key) == reference.get(key)
        if rng.random() < 0.1:
            victim = f"key-{rng.randint(0, 40)}"
            assert await memory.delete(victim) == reference.delete(victim)
    assert await memory.keys() == reference.keys()
    queries = [*WORDS[:8], "redis python", "ÉS", "CAFÉ", "ta", "a", "e sea", "東"]
    for query in queries:
        for mode in ("keyword", "semantic", "hybrid"):
            for filter_ in (None, {"group": 1}):
                got = await memory.search(query, limit=7, mode=mode, filter=filter_)  # type: ignore[arg-type]
                want = await reference.search(query, limit=7, mode=mode, filter=filter_)  # type: ignore[arg-type]
                assert [(h.key, h.value, h.metadata) for h in got] == [
                    (h.key, h.value, h.metadata) for h in want
                ], (query, mode, filter_)
                assert [h.score for h in got] == pytest.approx(
                    [h.score for h in want], rel=1e-9, abs=1e-12
                )


async def test_min_score_and_reranker_match_reference(make_memory: MakeMemory) -> None:
    """min_score keeps exactly the reference's hits scoring at least it, and a reranker
    reorders the reference's best RERANK_DEPTH hits, in every mode."""
    memory = await make_memory(embedder=HashingEmbedder(64))
    reference = ReferenceMemory(max_size=1000, embedder=HashingEmbedder(64))
    for key, value, meta in _random_corpus(11, 60):
        await memory.add(key, value, metadata=meta)
        await reference.add(key, value, metadata=meta)

    def backwards(query: str, hits: list[SearchHit]) -> list[float]:
        return [float(i) for i in range(len(hits))]

    for query in ("redis python", "cache", "ta"):
        for mode in ("keyword", "semantic", "hybrid"):
            want = await reference.search(query, limit=RERANK_DEPTH, mode=mode)  # type: ignore[arg-type]
            got = await memory.search(query, limit=50, mode=mode, min_score=MIN_RELEVANT_SCORE)  # type: ignore[arg-type]
            kept = [h for h in want if h.score >= MIN_RELEVANT_SCORE]
            assert [h.key for h in got] == [h.key for h in kept], (query, mode)
            assert [h.score for h in got] == pytest.approx([h.score for h in kept], rel=1e-9)
            reranked = await memory.search(query, limit=3, mode=mode, reranker=backwards)  # type: ignore[arg-type]
            assert [h.key for h in reranked] == [h.key for h in reversed(want)][:3]


async def test_semantic_and_hybrid_search(make_memory: MakeMemory) -> None:
    """With an embedder, semantic mode ranks by vector similarity and hybrid is the default."""
    memory = await make_memory(embedder=HashingEmbedder(128))
    await memory.add("cats", "the cat sat on the mat with other cats")
    await memory.add("dogs", "dogs bark at the mailman")
    await memory.add("stocks", "stock markets fell sharply today")
    semantic = await memory.search("catty", mode="semantic", limit=1)
    assert [h.key for h in semantic] == ["cats"]
    hybrid = await memory.search("cat")
    assert hybrid[0].key == "cats"
    keyword_only = await memory.search("catty", mode="keyword")
    assert keyword_only == []


# -- batches -----------------------------------------------------------------------------------


async def test_add_many_and_get_many(make_memory: MakeMemory) -> None:
    """add_many stores in order (last duplicate wins); get_many returns found keys only."""
    memory = await make_memory()
    await memory.add_many([("a", 1), ("b", {"x": [2]}), ("a", 3)], metadata={"batch": True})
    assert await memory.keys() == ["b", "a"]
    assert await memory.get_many(["a", "b", "missing"]) == {"a": 3, "b": {"x": [2]}}
    assert await memory.keys() == ["a", "b"]  # get_many refreshes recency in key order
    await memory.add_many({})
    assert await memory.get_many([]) == {}


async def test_add_many_validates_everything_first(make_memory: MakeMemory) -> None:
    """One bad item refuses the whole batch: nothing is stored."""
    memory = await make_memory()
    with pytest.raises(TypeError, match=r"items\[1\] value"):
        await memory.add_many([("a", 1), ("b", {1, 2}), ("c", 3)])
    with pytest.raises(ValueError, match=r"items\[0\] key"):
        await memory.add_many([("", 1)])
    with pytest.raises(TypeError, match="items"):
        await memory.add_many("abc")  # type: ignore[arg-type]
    assert await memory.size() == 0


async def test_add_many_respects_lru_bound(make_memory: MakeMemory) -> None:
    """A batch larger than max_size keeps the newest max_size records."""
    memory = await make_memory(max_size=5)
    await memory.add_many({f"k{i}": i for i in range(12)})
    assert await memory.keys() == [f"k{i}" for i in range(7, 12)]


async def test_clear_only_clears_its_namespace(make_memory: MakeMemory) -> None:
    """clear empties this namespace and reports how many records it removed."""
    memory = await make_memory()
    other = memory.scoped("child")
    await memory.add_many({"a": 1, "b": 2})
    await other.add("c", 3)
    assert await memory.clear() == 2
    assert await memory.size() == 0
    assert await memory.search("a") == []
    assert await other.get("c") == 3


# -- namespace trees: search(subtree=True), list(subtree=True), namespaces(...) ---------------

_TREE = [
    ((), "r1", "python tips for the redis client"),
    (("u1",), "a1", "python python and more python"),
    (("u1",), "a2", "gardening notes about tomatoes"),
    (("u1", "notes"), "n1", "redis streams in python scripts explained at length today"),
    (("u2",), "b1", "a python"),
    (("u2",), "b2", "tomatoes and redis"),
    (("u2", "deep", "er"), "d1", "python redis python redis"),
]


async def _tree(make_memory: MakeMemory, **kwargs: Any) -> tuple[MemoryPrimitive, MemoryPrimitive]:
    """The records of _TREE spread over a namespace tree, and the same records (same write
    order) in one namespace of a second memory on the same kind of backend."""
    tree = await make_memory(**kwargs)  # namespaces of their own on a shared server
    flat = await make_memory(**kwargs)
    outside = MemoryPrimitive(
        backend=tree.backend, namespace=f"{tree.namespace[0]}x"
    )  # prefix-like
    await outside.add("x1", "python redis python outside the tree")
    for ns, key, value in _TREE:
        await (tree.scoped(*ns) if ns else tree).add(key, value, metadata={"n": len(ns)})
        await flat.add(key, value, metadata={"n": len(ns)})
    return tree, flat


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
async def test_subtree_search_scores_as_one_namespace(make_memory: MakeMemory, mode: str) -> None:
    """A tree search ranks and scores every record as if the tree were one namespace (BM25
    statistics of the union), each hit carries its namespace, relative to the root, and
    every backend returns the same list as the in-memory one."""
    tree, flat = await _tree(make_memory, embedder=HashingEmbedder(64))
    reference = MemoryPrimitive(namespace="tree", embedder=HashingEmbedder(64))
    for ns, key, value in _TREE:
        await (reference.scoped(*ns) if ns else reference).add(key, value, metadata={"n": len(ns)})
    where = {key: ns for ns, key, _ in _TREE}
    for query in ("python", "redis python", "tomatoes", "pyth"):
        got = await tree.search(query, mode=mode, limit=10, subtree=True)  # type: ignore[arg-type]
        want = await flat.search(query, mode=mode, limit=10)  # type: ignore[arg-type]
        # The same hits with the same scores; equal scores in namespace order (sorted),
        # where one namespace breaks them newest first.
        assert sorted((-h.score, h.key) for h in got) == sorted((-h.score, h.key) for h in want)
        assert [(-h.score, h.namespace) for h in got] == sorted(
            (-h.score, h.namespace) for h in got
        ), query
        assert [h.namespace for h in got] == [where[h.key] for h in got]
        assert all(h.key != "x1" for h in got)
        assert {h.key: h.value for h in got} == {h.key: h.value for h in want}
        # And the very same list, ties included, as the in-memory backend gives.
        ref = await reference.search(query, mode=mode, limit=10, subtree=True)  # type: ignore[arg-type]
        assert [(h.namespace, h.key, h.score) for h in got] == [
            (h.namespace, h.key, h.score) for h in ref
        ], query


async def test_subtree_search_limit_filter_and_scope(make_memory: MakeMemory) -> None:
    """The limit cuts the merged ranking; a filter applies in every namespace; a subtree
    search from a scoped view covers only that view's tree, hits relative to it."""
    tree, flat = await _tree(make_memory)
    top2 = await tree.search("python", limit=2, subtree=True)
    assert [h.key for h in top2] == [h.key for h in await flat.search("python", limit=2)]
    deep = await tree.search("python", limit=10, subtree=True, filter={"n": {"$gte": 2}})
    assert sorted(h.key for h in deep) == ["d1", "n1"]
    u2 = await tree.scoped("u2").search("python redis", limit=10, subtree=True)
    assert {h.key: h.namespace for h in u2} == {"b1": (), "b2": (), "d1": ("deep", "er")}
    assert [h.namespace for h in await tree.search("python", limit=10)] == [()]
    assert await tree.scoped("nobody").search("python", subtree=True) == []


async def test_subtree_search_arguments_are_checked(make_memory: MakeMemory) -> None:
    """A non-bool subtree, or recency weighting of a hybrid tree search, is refused first."""
    tree = await make_memory(embedder=HashingEmbedder(32))
    with pytest.raises(TypeError, match="subtree"):
        await tree.search("x", subtree="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recency_half_life"):
        await tree.search("x", mode="hybrid", subtree=True, recency_half_life=60)
    with pytest.raises(TypeError, match="subtree"):
        await tree.list(subtree=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("order", ["newest", "oldest"])
async def test_subtree_list_walks_every_namespace_once(make_memory: MakeMemory, order: str) -> None:
    """list(subtree=True) pages through the tree namespace by namespace (sorted, the root
    first), each in write order, every record once, each with its namespace."""
    tree, _ = await _tree(make_memory)
    seen = []
    cursor = None
    while True:
        page = await tree.list(subtree=True, limit=2, cursor=cursor, order=order)  # type: ignore[arg-type]
        seen += [(r.namespace, r.key) for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = sorted(
        ((ns, key) for ns, key, _ in _TREE),
        key=lambda item: (item[0], [k for _, k, _ in _TREE].index(item[1])),
    )
    if order == "newest":  # each namespace's records newest first; namespaces still sorted
        expected = sorted(expected, key=lambda item: item[0])
        by_ns: dict[tuple[str, ...], list[Any]] = {}
        for item in expected:
            by_ns.setdefault(item[0], []).append(item)
        expected = [item for ns in sorted(by_ns) for item in reversed(by_ns[ns])]
    assert seen == expected
    only = await tree.list(subtree=True, filter={"n": 1}, limit=10)
    assert sorted(r.key for r in only.records) == ["a1", "a2", "b1", "b2"]
    with pytest.raises(ValueError, match="cursor"):
        await tree.list(subtree=True, cursor="n1.2")
    first = await tree.list(subtree=True, limit=1, order="newest")
    with pytest.raises(ValueError, match="other order"):
        await tree.list(subtree=True, cursor=first.next_cursor, order="oldest")


async def test_namespaces_prefix_suffix_wildcards_and_depth(make_memory: MakeMemory) -> None:
    """namespaces(prefix, suffix, max_depth): ``*`` matches one part, the depth cut
    drops duplicates, results are sorted and relative to the memory's namespace."""
    memory = await make_memory()
    for ns in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "c", "f"), ("b", "a", "f"), ("u",)]:
        await memory.scoped(*ns).add("k", "v")
    assert await memory.namespaces(("a",)) == [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "c", "f"),
    ]
    assert await memory.namespaces(("a", "*", "f")) == [("a", "c", "f")]
    assert await memory.namespaces(suffix=("f",)) == [("a", "c", "f"), ("b", "a", "f")]
    assert await memory.namespaces(("*",), suffix=("*", "f")) == [("a", "c", "f"), ("b", "a", "f")]
    assert await memory.namespaces(max_depth=1) == [("a",), ("b",), ("u",)]
    assert await memory.namespaces(("a", "b"), max_depth=3) == [("a", "b", "c"), ("a", "b", "d")]
    assert await memory.namespaces(("*", "*", "*", "*")) == [("a", "b", "d", "e")]
    with pytest.raises(ValueError, match="max_depth"):
        await memory.namespaces(max_depth=0)
    with pytest.raises(TypeError, match="suffix"):
        await memory.namespaces(suffix="f")


# -- index_text: extra text indexed with a record, not part of its value -------------------


async def _turns(memory: MemoryPrimitive) -> None:
    await memory.add(
        "answer", "Yes, it was amazing!", index_text="Did you enjoy the concert in Lisbon?"
    )
    await memory.add("other", "I deployed the service on Friday")
    await memory.add("third", "The weather was rainy all week")


async def test_index_text_is_searched_but_not_stored_in_the_value(make_memory: MakeMemory) -> None:
    """Keyword search finds a record through its index_text alone (words and the substring
    rule); get returns the value unchanged; get_record and list show the index text."""
    memory = await make_memory()
    await _turns(memory)
    hits = await memory.search("concert in Lisbon", mode="keyword")
    assert [h.key for h in hits] == ["answer"]
    assert hits[0].value == "Yes, it was amazing!"
    assert [h.key for h in await memory.search("lisbo", mode="keyword")] == ["answer"]
    assert await memory.search("amazing concert", mode="keyword") != []
    assert await memory.get("answer") == "Yes, it was amazing!"
    record = await memory.get_record("answer")
    assert record is not None
    assert record.index_text == "Did you enjoy the concert in Lisbon?"
    assert record.value == "Yes, it was amazing!"
    other = await memory.get_record("other")
    assert other is not None
    assert other.index_text is None
    listed = {r.key: r.index_text for r in (await memory.list()).records}
    assert listed == {
        "answer": "Did you enjoy the concert in Lisbon?",
        "other": None,
        "third": None,
    }


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
async def test_index_text_is_embedded_with_the_value(make_memory: MakeMemory, mode: str) -> None:
    """With an embedder, the index text is embedded together with the value: semantic and
    hybrid search find a record through it; embed=False leaves it out of semantic search."""
    memory = await make_memory(embedder=HashingEmbedder(256))
    await _turns(memory)
    await memory.add("plain", "Yes, it was great", index_text="lisbon concert", embed=False)
    hits = await memory.search("concert Lisbon", mode=mode, limit=5)  # type: ignore[arg-type]
    # hybrid also finds "plain" by keyword (its index text), semantic search cannot
    found = [h.key for h in hits]
    if mode == "semantic":
        assert found[0] == "answer"
        assert "plain" not in found
    else:
        assert set(found[:2]) == {"answer", "plain"}


async def test_add_many_index_text(make_memory: MakeMemory) -> None:
    """add_many(index_text=) maps keys to their text; a key not in items is refused and
    nothing is stored."""
    memory = await make_memory(embedder=HashingEmbedder(128))
    await memory.add_many(
        {"t1": "Sure, see you then", "t2": "Sounds good"},
        index_text={"t1": "Shall we meet at the harbour on Tuesday?"},
    )
    assert [h.key for h in await memory.search("harbour tuesday", mode="keyword")] == ["t1"]
    assert (await memory.search("harbour tuesday", mode="semantic", limit=1))[0].key == "t1"
    assert await memory.get_many(["t1", "t2"]) == {"t1": "Sure, see you then", "t2": "Sounds good"}
    with pytest.raises(ValueError, match="index_text"):
        await memory.add_many({"t3": "x"}, index_text={"nope": "y"})
    with pytest.raises(TypeError, match="index_text"):
        await memory.add_many({"t3": "x"}, index_text={"t3": 5})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="index_text"):
        await memory.add_many({"t3": "x"}, index_text=["t3"])  # type: ignore[arg-type]
    assert await memory.get("t3") is None
    assert await memory.size() == 2


async def test_update_keeps_or_replaces_index_text(make_memory: MakeMemory) -> None:
    """An update without index_text keeps it (also over a new value, which is embedded with
    it); with one it replaces it; None removes it."""
    memory = await make_memory(embedder=HashingEmbedder(256))
    await _turns(memory)
    record = await memory.update("answer", value="Yes!", metadata={"n": 1})
    assert record.index_text == "Did you enjoy the concert in Lisbon?"
    assert record.value == "Yes!"
    assert (await memory.search("concert lisbon", mode="semantic", limit=1))[0].key == "answer"
    assert [h.key for h in await memory.search("lisbon", mode="keyword")] == ["answer"]
    record = await memory.update("answer", index_text="What about the match in Porto?")
    assert record.index_text == "What about the match in Porto?"
    assert await memory.search("lisbon", mode="keyword") == []
    assert [h.key for h in await memory.search("porto", mode="keyword")] == ["answer"]
    stored = await memory.get_record("answer")
    assert stored is not None
    assert stored.index_text == "What about the match in Porto?"
    assert stored.value == "Yes!"
    assert stored.metadata == {"n": 1}
    record = await memory.update("answer", index_text=None)
    assert record.index_text is None
    assert await memory.search("porto", mode="keyword") == []
    stored = await memory.get_record("answer")
    assert stored is not None
    assert stored.index_text is None


async def test_index_text_refused_with_nothing_stored(make_memory: MakeMemory) -> None:
    """A non-str or oversized index_text raises naming it, and nothing is written."""
    memory = await make_memory(max_value_bytes=64)
    with pytest.raises(TypeError, match="index_text"):
        await memory.add("k", "v", index_text=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index_text"):
        await memory.add("k", "v", index_text="x" * 65)
    assert await memory.get("k") is None
    await memory.add("k", "v", index_text="fine")
    with pytest.raises(TypeError, match="index_text"):
        await memory.update("k", index_text=b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index_text"):
        await memory.update("k", value="w", index_text="é" * 33)
    record = await memory.get_record("k")
    assert record is not None
    assert (record.value, record.index_text) == ("v", "fine")


async def test_index_text_in_history_and_transfer(make_memory: MakeMemory) -> None:
    """Each history version keeps its own index text; export and import carry it, for
    current records and earlier versions alike."""
    memory = await make_memory(history=3, max_size=None)
    await memory.add("k", "first", index_text="context one")
    await memory.add("k", "second", index_text="context two")
    await memory.update("k", value="third")
    versions = await memory.history("k")
    assert [(v.value, v.index_text) for v in versions] == [
        ("third", "context two"),
        ("second", "context two"),
        ("first", "context one"),
    ]
    await memory.add("plain", "no context")
    exported = [obj async for obj in memory.export(history=True)]
    assert {(o["key"], o["value"], o.get("index_text")) for o in exported} == {
        ("k", "third", "context two"),
        ("k", "second", "context two"),
        ("k", "first", "context one"),
        ("plain", "no context", None),
    }
    back = await make_memory(history=3, max_size=None)
    await back.import_(exported)
    restored = [(v.value, v.index_text) for v in await back.history("k")]
    assert restored[0] == ("third", "context two")
    assert sorted(restored[1:]) == [("first", "context one"), ("second", "context two")]
    assert [h.key for h in await back.search("two", mode="keyword")] == ["k"]
    plain = await back.get_record("plain")
    assert plain is not None
    assert plain.index_text is None
