"""The vectorized SearchIndex against the reference scorer, and the store's bounded memory."""

from __future__ import annotations

import random
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tta_dev_primitives import InMemoryStore
from tta_dev_primitives.memory import search
from tta_dev_primitives.memory.index import SearchIndex
from tta_dev_primitives.memory.search import index as index_module
from tta_dev_primitives.memory.search import text as search_text

from tests.support.clock import FakeClock

WORDS = ["alpha", "alp", "beta", "gamma", "alphabet", "bet", "delta", "lta", "x", "Straße", "ΣΑΣ"]


def _reference_keyword(
    live: dict[str, tuple[int, search.Document, Any]],
    text: str,
    limit: int | None,
    filter_: dict[str, Any] | None,
) -> list[search.Scored]:
    query = search.prepare_query(text)
    assert query is not None
    df = {t: sum(1 for _, d, _ in live.values() if t in d.terms) for t in query.terms}
    total = sum(d.length for _, d, _ in live.values())
    candidates = ((k, seq, d, m) for k, (seq, d, m) in live.items())
    return search.rank_keyword(query, candidates, df, len(live), total, limit, filter_)


def _reference_semantic(
    live: dict[str, tuple[int, search.Document, Any]],
    vector: search.Vector,
    limit: int | None,
    filter_: dict[str, Any] | None,
) -> list[search.Scored]:
    candidates = ((k, seq, d, m) for k, (seq, d, m) in live.items())
    return search.rank_semantic(vector, candidates, limit, filter_)


def _random_text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 10)))


def test_index_scores_equal_reference_scoring() -> None:
    """Keyword and semantic results equal scoring every live record, bit for bit."""
    rng = random.Random(7)
    index = SearchIndex()
    live: dict[str, tuple[int, search.Document, Any]] = {}
    for i in range(400):
        text = _random_text(rng)
        vector = np.asarray([rng.gauss(0, 1) for _ in range(16)])
        doc = search.make_document({"t": text, "n": [text.upper()]}, vector)
        key = f"k{rng.randint(0, 150)}"
        meta = {"g": i % 3, "flag": i % 2 == 0}
        index.upsert(key, i, doc, meta)
        live[key] = (i, doc, meta)
        if rng.random() < 0.15:
            victim = f"k{rng.randint(0, 150)}"
            assert index.remove(victim) == (live.pop(victim, None) is not None)
    assert len(index) == len(live)
    queries = [*WORDS, "alpha beta", "ta de", "pha", "a", "lpha bet", "  ALPHA  ", ".", "STRASSE"]
    for text in queries:
        query = search.prepare_query(text)
        assert query is not None
        for limit in (None, 1, 5):
            for filter_ in (None, {"g": 1}, {"g": 1.0, "flag": True}, {"flag": 1}):
                want = _reference_keyword(live, text, limit, filter_)
                assert index.search_keyword(query, limit, filter_) == want, (text, limit)
    for _ in range(20):
        q = search.normalize_vector([rng.gauss(0, 1) for _ in range(16)])
        for limit in (None, 1, 7):
            for filter_ in (None, {"g": 2}):
                want = _reference_semantic(live, q, limit, filter_)
                assert index.search_semantic(q, limit, filter_) == want


def test_index_finds_substrings_and_forgets_dead_words() -> None:
    """Vocabulary trigrams find words containing a query word; removal forgets the words."""
    index = SearchIndex()
    index.upsert("k1", 1, "pythonic code")
    index.upsert("k2", 2, "jython runtime")
    q = search.prepare_query("ython")
    assert q is not None
    assert {k for _, _, k in index.search_keyword(q, None)} == {"k1", "k2"}
    assert index.remove("k1")
    assert not index.remove("k1")
    assert {k for _, _, k in index.search_keyword(q, None)} == {"k2"}
    index.remove("k2")
    assert len(index) == 0
    assert index.total_length == 0
    assert index.df("jython") == 0
    assert index._words.grams == {}
    assert index._words.lists == {}


def test_index_applies_absolute_expiry_at_search_time() -> None:
    """A search given ``now`` drops records whose expiry has passed, statistics included."""
    index = SearchIndex()
    index.upsert("old", 1, "shared word", expires_at=10.0)
    index.upsert("new", 2, "shared other", expires_at=None)
    assert [k for _, _, k in index.search("shared", 5, now=5.0)] == ["new", "old"]
    assert [k for _, _, k in index.search("shared", 5, now=10.0)] == ["new"]
    assert len(index) == 1
    assert index.df("shared") == 1


def test_index_rejects_vectors_of_another_length_and_embedder() -> None:
    """Vectors of one index share a length; the namespace remembers its embedder."""
    index = SearchIndex()
    index.check_space("model-a", 3)
    index.upsert("a", 1, "x", vector=[1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="3"):
        index.upsert("b", 2, "y", vector=[1.0, 0.0])
    with pytest.raises(ValueError, match=r"'model-a'.*'model-b'"):
        index.check_space("model-b", 3)
    index.clear()
    index.check_space("model-b", 2)


@pytest.mark.parametrize("piece", [7, 8192])
def test_index_bulk_load_equals_one_at_a_time(piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """upsert_many (a key written twice included; in pieces of ``piece`` records) indexes
    exactly what upserts would."""
    monkeypatch.setattr(index_module, "_BULK", piece)
    rng = random.Random(3)
    records = []
    for i in range(300):
        vec = [rng.gauss(0, 1) for _ in range(8)] if rng.random() < 0.8 else None
        records.append((f"k{rng.randint(0, 120)}", i, _random_text(rng), {"g": i % 2}, None, vec))
    bulk, single = SearchIndex(), SearchIndex()
    bulk.upsert_many(records)
    for record in records:
        single.upsert(*record)
    q = search.normalize_vector([1.0] * 8)
    for text in ["alpha", "beta gamma", "lta"]:
        for mode in ("keyword", "semantic", "hybrid"):
            got = bulk.search(text, 10, mode=mode, vector=q)  # type: ignore[arg-type]
            assert got == single.search(text, 10, mode=mode, vector=q)  # type: ignore[arg-type]
    assert bulk._vectors.n_rows - len(bulk._vectors.free_rows) == sum(
        1 for s in bulk._vectors.row if s >= 0
    )


OPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "put", "delete"]),
        st.integers(0, 25),
        st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join),
        st.integers(0, 2),
        st.lists(st.floats(-1, 1), min_size=4, max_size=4),
    ),
    max_size=80,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, query=st.sampled_from([*WORDS, "alpha beta", "a", "ta", "ss"]))
def test_index_agrees_with_reference_over_random_histories(
    ops: list[tuple[str, int, str, int, list[float]]], query: str
) -> None:
    """Random writes, overwrites and deletes: the index ranks like scoring every record."""
    index = SearchIndex()
    live: dict[str, tuple[int, search.Document, Any]] = {}
    for seq, (op, k, text, group, vec) in enumerate(ops):
        key = f"k{k}"
        if op == "delete":
            index.remove(key)
            live.pop(key, None)
        else:
            doc = search.make_document([text, {"x": text}], vec)
            index.upsert(key, seq, doc, {"g": group})
            live[key] = (seq, doc, {"g": group})
    prepared = search.prepare_query(query)
    assert prepared is not None
    q = search.normalize_vector([0.5, -0.25, 1.0, 0.1])
    for limit in (None, 3):
        for filter_ in (None, {"g": 1}):
            want = _reference_keyword(live, query, limit, filter_)
            assert index.search_keyword(prepared, limit, filter_) == want
            got = index.search_semantic(q, limit, filter_)
            ref = _reference_semantic(live, q, limit, filter_)
            assert [k for _, _, k in got] == [k for _, _, k in ref]
            assert [s for s, _, _ in got] == pytest.approx([s for s, _, _ in ref], abs=1e-5)


def test_generations_are_numbered_again_before_they_overflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the last int32 generation the live records are numbered again: dead postings
    never come back to life, expiries still name their records, rankings are unchanged."""
    monkeypatch.setattr(index_module, "_MAX_GEN", 40)
    rng = random.Random(11)
    index = SearchIndex()
    live: dict[str, tuple[int, search.Document, Any]] = {}
    for seq in range(300):
        key = f"k{rng.randint(0, 12)}"
        text = _random_text(rng)
        if rng.random() < 0.3:
            index.upsert_many([(key, seq, text, None, 1000.0 + seq, None)])
        else:
            index.upsert(key, seq, text, None, 1000.0 + seq)
        live[key] = (seq, search.make_document(text), None)
        assert index._next_gen <= 40
    for text in ["alpha", "beta gamma", "lta", "x"]:
        prepared = search.prepare_query(text)
        assert prepared is not None
        assert index.search_keyword(prepared, None) == _reference_keyword(live, text, None, None)
    expired = index.expire(1000.0 + 250)
    assert expired == sum(1 for seq, _, _ in live.values() if seq <= 250)
    assert len(index) == len(live) - expired


def test_case_folding_in_words_and_substrings() -> None:
    """'STRASSE' finds 'Straße'; a capital sigma finds a final sigma, on the store too."""
    assert search.tokenize("Straße ΣΟΦΟΣ") == ["strasse", "σοφοσ"]
    store = InMemoryStore()
    store.add("de", "Die Straße ist lang")
    store.add("el", "\u03bf \u03c3\u03bf\u03c6\u03cc\u03c2")  # omicron, final sigma
    assert [h.key for h in store.search("STRASSE")] == ["de"]
    assert [h.key for h in store.search("STRAS")] == ["de"]
    assert [h.key for h in store.search("ΣΟΦΌΣ")] == ["el"]


def test_store_search_refuses_a_bad_filter() -> None:
    """A filter that is not a mapping is a TypeError naming ``filter``."""
    store = InMemoryStore()
    store.add("a", "x")
    with pytest.raises(TypeError, match="filter"):
        store.search("x", filter="g")  # type: ignore[arg-type]


def _allocated(run: Any) -> int:
    tracemalloc.start()
    try:
        run()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current


def test_expiry_heap_stays_proportional_to_live_records() -> None:
    """Rewriting one key with a TTL many times does not grow the store's memory."""
    clock = FakeClock()
    store = InMemoryStore(clock=clock)

    def run() -> None:
        for i in range(20_000):
            store.add("k", i, ttl=1000.0)

    assert _allocated(run) < 64_000
    assert store.size() == 1


def test_index_memory_stays_proportional_to_live_records() -> None:
    """Records with ever new words, deleted again: words of dead records are forgotten."""
    store = InMemoryStore(max_size=20)
    for i in range(20):
        store.add(f"k{i}", f"word{i} common")
    store.search("common")

    def run() -> None:
        for i in range(20, 4000):
            store.add(f"k{i % 20}", f"unique{i} another{i} common")
            if i % 7 == 0:
                store.search("common")
        store.search("common")

    assert _allocated(run) < 400_000  # about 200 KB of free lists; 7 MB when words leaked
    assert len(store._index._words.lists) <= 41


def test_convex_fusion_discounts_accidental_keyword_hits() -> None:
    """A keyword hit far below the query's possible score does not reorder semantic hits."""
    keyword = [(1.0, 1, "noise"), (0.5, 2, "other")]
    semantic = [(0.9, 3, "answer"), (0.85, 1, "noise"), (0.1, 4, "far")]
    plain = search.fuse_convex(keyword, semantic, None, 0.5)
    assert plain[0][2] == "noise"
    weak = search.fuse_convex(keyword, semantic, None, 0.5, keyword_bound=20.0)
    assert weak[0][2] == "answer"
    strong = search.fuse_convex(keyword, semantic, None, 0.5, keyword_bound=2.0)
    assert strong == plain
    assert search.keyword_confidence(1.0, 20.0) == 0.0
    assert search.keyword_confidence(1.0, 2.0) == 1.0
    assert search.keyword_confidence(1.0, None) == 1.0
    query = search.prepare_query("alpha zeta")
    assert query is not None
    bound = search.keyword_bound(query, {"alpha": 1}, 10)
    assert bound == pytest.approx((search.idf(1, 10) + search.idf(0, 10)) * 2.2 + 1.0)


def test_memory_estimate_follows_the_live_records() -> None:
    """memory_bytes grows with records and vectors and falls back when they are removed."""
    index = SearchIndex()
    empty = index.memory_bytes()
    index.upsert_many(
        (f"k{i}", i, f"record {i} with words", None, None, [1.0, float(i), 0.5, 0.0])
        for i in range(2000)
    )
    full = index.memory_bytes()
    assert full > empty + 2000 * (4 * 4)
    for i in range(2000):
        index.remove(f"k{i}")
    assert index.memory_bytes() < full
    index.clear()
    assert index.memory_bytes() == empty


# Letters, digits, "_" (word characters), ASCII punctuation and spaces, a newline, and
# non-ASCII word and non-word characters, so words of every width and leaves of both kinds
# are drawn.
_CHARS = st.sampled_from([*"abcXYZ019_ .,-\n\t", "ß", "é", "Σ", "ς", "\u00a0", "—", "中", "٣"])
_LEAF = st.lists(_CHARS, max_size=40).map("".join) | st.sampled_from(
    ["a" * 8, "b" * 9, "c" * 16, "d" * 17, "word_" * 7, "x1" * 20, ""]
)


@settings(max_examples=150, deadline=None)
@given(
    leaves=st.lists(_LEAF.map(str.casefold), max_size=30),
    chunk=st.sampled_from([8, 64, 1 << 16]),
)
def test_tokenize_many_finds_the_words_tokenize_finds(leaves: list[str], chunk: int) -> None:
    """The batch tokenizer finds each leaf's words exactly as the regular expression does."""
    vocab = {"seen": 0}
    original = search_text._BATCH_CHARS
    search_text._BATCH_CHARS = chunk  # several numpy passes over the same leaves
    try:
        owners, ids = search.tokenize_many(leaves, vocab)
    finally:
        search_text._BATCH_CHARS = original
    assert vocab["seen"] == 0
    assert sorted(vocab.values()) == list(range(len(vocab)))
    names = list(vocab)
    got: list[list[str]] = [[] for _ in leaves]
    for owner, word in zip(owners.tolist(), ids.tolist(), strict=True):
        got[owner].append(names[word])
    assert [sorted(words) for words in got] == [sorted(search.tokenize(leaf)) for leaf in leaves]


_VALUE = st.one_of(
    _LEAF,
    st.lists(_LEAF, max_size=3),
    st.dictionaries(st.sampled_from(["t", "alpha", "n"]), _LEAF | st.integers(), max_size=3),
    st.integers(),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.tuples(st.integers(0, 15), _VALUE, st.booleans()), max_size=40),
    removed=st.sets(st.integers(0, 15)),
    query=st.sampled_from(["a", "abc", "é", "ß ss", "x1x1", "word_", "c" * 16, "b" * 9, "Σ", "_"]),
    piece=st.sampled_from([3, 8192]),
)
def test_bulk_load_of_random_corpora_ranks_like_the_reference(
    values: list[tuple[int, Any, bool]], removed: set[int], query: str, piece: int
) -> None:
    """upsert_many of any values (ready Documents too, keys repeated), in one piece or in
    several, then removals: the index ranks like scoring every live record, and forgets
    every word once all are gone."""
    records = []
    live: dict[str, tuple[int, search.Document, Any]] = {}
    for seq, (k, value, ready) in enumerate(values):
        doc = search.make_document(value)
        records.append((f"k{k}", seq, doc if ready else value, {"g": k % 2}, None, None))
        live[f"k{k}"] = (seq, doc, {"g": k % 2})
    index = SearchIndex()
    index.upsert("k0", -1, "an older abc record")  # replaced by the batch, when it has k0
    live.setdefault("k0", (-1, search.make_document("an older abc record"), None))
    original = index_module._BULK
    index_module._BULK = piece
    try:
        index.upsert_many(records)
    finally:
        index_module._BULK = original
    for k in removed:
        index.remove(f"k{k}")
        live.pop(f"k{k}", None)
    prepared = search.prepare_query(query)
    assert prepared is not None
    for limit in (None, 2):
        for filter_ in (None, {"g": 1}):
            want = _reference_keyword(live, query, limit, filter_)
            assert index.search_keyword(prepared, limit, filter_) == want
    assert index.total_length == sum(d.length for _, d, _ in live.values())
    for key in list(live):
        index.remove(key)
    assert index._words.lists == {}
    assert index._words.grams == {}
    assert index._words.n_postings == 0
    assert index.total_length == 0
    assert index._words.n_postings == 0


def test_kth_floor_is_a_bound_and_exact_when_the_top_is_crowded() -> None:
    """The top-k floor of semantic search never exceeds the k-th largest score (else a
    top record could be cut), on spread scores, on a top crowded into one chunk (then the
    passing rows are partitioned: the floor is the k-th largest itself) and on ties."""
    from tta_dev_primitives.memory.search.scoring import kth_floor as _kth_floor

    rng = np.random.default_rng(7)
    crowded = np.concatenate([np.full(5000, 0.9), rng.random(20000) * 0.5]).astype(np.float32)
    cases = [
        rng.standard_normal(100_000).astype(np.float32),
        crowded,
        np.ones(3000, dtype=np.float32),
        rng.random(11).astype(np.float32),
    ]
    for scores in cases:
        for k in (1, 3, 10):
            kth = float(np.sort(scores)[-k])
            assert _kth_floor(scores, k) <= kth
    assert _kth_floor(crowded, 10) == float(np.float32(0.9))
